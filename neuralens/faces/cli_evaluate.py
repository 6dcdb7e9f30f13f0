"""`neuralens faces evaluate | calibrate | train`: measure, calibrate and improve the face matching.

The commands that work on labelled data rather than on the gallery's people: verification metrics on a
pair list (evaluate), the threshold and confidence fit stored in the gallery (calibrate), and trained
heads (train). Like the rest of ``neuralens faces`` they parse, call the API and print; their
subcommands are added by ``neuralens.faces.cli.register``, which calls ``add_commands`` here, and they
share its option helpers.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from ..progress import Progress
from . import metrics
from .calibration import calibrate
from .cli import _evaluation_setup, _gallery_option, _head_option, _json_option, _open, _pipeline_options, _print_json

FEATURE_NAMES = {"both": "|f1-f2| and chi-square", "abs": "|f1-f2|", "chi2": "chi-square"}


# --- helpers ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _progress(what: str = "encoding") -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback for the API, shown on stderr by ``neuralens.progress``: a bar
    on a terminal, a line every few seconds elsewhere."""
    with Progress(None, what=what, unit="image") as bar:

        def update(done: int, total: int) -> None:
            if bar.total != total:
                bar.set_total(total)
            bar.update(done - bar.count)

        yield update


def _format_rate(value) -> str:
    return "n/a (too few different-person pairs)" if value is None else f"{value:.4f}"


def _print_metrics(report: dict, indent: str = "") -> None:
    print(f"{indent}accuracy         {report['accuracy']:.4f} at threshold {report['threshold']:.4f}")
    print(f"{indent}best threshold   {report['best_threshold']:.4f} (accuracy {report['best_accuracy']:.4f})")
    print(f"{indent}ROC AUC          {report['roc_auc']:.4f}")
    print(f"{indent}EER              {report['eer']:.4f}")
    for far, tar in report["tar_at_far"].items():
        print(f"{indent}TAR @ FAR={far:<6} {_format_rate(tar)}")


# --- commands -----------------------------------------------------------------------------------------
def cmd_evaluate(args) -> int:
    """Verification metrics on a labelled pair list."""
    metric, pipeline = _evaluation_setup(args)
    with _progress() as progress:
        report = metrics.evaluate_pairs(
            args.pairs,
            args.images,
            threshold=args.threshold,
            pipeline=pipeline,
            metric=metric,
            upsample=args.upsample,
            progress=progress,
        )
    report.pop("distances"), report.pop("same")
    if args.json:
        _print_json(report)
        return 0
    print(
        f"pairs            {report['pairs']} ({report['pairs_used']} used: {report['same_pairs']} same, "
        f"{report['different_pairs']} different)"
    )
    print(f"images           {report['images']} ({report['no_face']} without a face)")
    _print_metrics(report)
    print(f"seconds/image    {report['seconds_per_image']:.3f}")
    return 0


def cmd_calibrate(args) -> int:
    """Choose and store the threshold and confidence fit."""
    _, pipeline = _evaluation_setup(args)
    with _progress() as progress:
        result = calibrate(
            args.pairs,
            args.images,
            far=args.far,
            folds=args.folds,
            pipeline=pipeline,
            upsample=args.upsample,
            progress=progress,
        )
    with _open(args, create=True) as store:  # created only now, when there is something to store
        result.store(store)
    if args.json:
        _print_json(result.to_dict())
        return 0
    if result.accuracy is not None:
        print(
            f"threshold {result.threshold:.4f} ({result.method}: accuracy {result.accuracy:.4f} "
            f"± {result.accuracy_std:.4f} on held-out folds)"
        )
    else:
        print(
            f"threshold {result.threshold:.4f} (false-accept rate {result.far:.2e}, true-accept rate {result.tar:.4f})"
        )
    fit = result.confidence_fit
    sign = "-" if fit["slope"] < 0 else "+"
    print(f"confidence P(same) = sigmoid({fit['intercept']:.3f} {sign} {abs(fit['slope']):.3f} * distance)")
    print(f"stored in {result.gallery}")
    return 0


def cmd_train(args) -> int:
    """Train heads on a folder-per-person dataset."""
    from . import training  # noqa: PLC0415 -- imports torch

    _, pipeline = _evaluation_setup(args)
    with _progress() as progress:
        report = training.train(
            args.dataset,
            args.output,
            split=args.split,
            test_fraction=args.test_fraction,
            use=args.use,
            steps=args.steps,
            margin=args.margin,
            seed=args.seed,
            pipeline=pipeline,
            upsample=args.upsample,
            progress=progress,
            features=args.features,
        )
    if args.json:
        _print_json(report)
        return 0
    print(
        f"trained on {report['train_images']} photos of {report['train_people']} people, tested on "
        f"{report['test_images']} held-out photos of {report['test_people']} people "
        f"({report['no_face']} photo(s) without a face skipped)"
    )
    for key, title in (
        ("before", "pretrained encoder (before)"),
        ("projection", "projection head (triplet loss)"),
        ("classifier", f"classifier head (logistic regression on {FEATURE_NAMES[args.features]})"),
    ):
        print(f"{title}:")
        _print_metrics(report[key], indent="  ")
    print(f"saved the {report['use']} head to {report['output']} (use it with --head)")
    return 0


# --- wiring -------------------------------------------------------------------------------------------
def add_commands(sub) -> None:
    """Add `neuralens faces evaluate | calibrate | train` to the `faces` subparsers ``sub``."""
    for name, helptext, func in (
        ("evaluate", "verification metrics on a labelled pair list", cmd_evaluate),
        ("calibrate", "choose and store the threshold and confidence fit", cmd_calibrate),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("pairs", metavar="PAIRS", help="CSV file_x,file_y,Decision (Yes/No) or LFW pairs.txt")
        p.add_argument("--images", required=True, metavar="DIR", help="folder the pair list's images are in")
        if name == "evaluate":
            p.add_argument(
                "--threshold", type=float, help="threshold to report accuracy at (default: the gallery's, else 0.6)"
            )
            _head_option(p)
        else:
            p.add_argument(
                "--far",
                type=float,
                metavar="RATE",
                help="instead of the best accuracy, the threshold for this false-accept rate (e.g. 1e-3)",
            )
            p.add_argument("--folds", type=int, default=10, help="cross-validation folds (default 10)")
        _pipeline_options(p), _gallery_option(p), _json_option(p)
        p.set_defaults(func=func)

    p = sub.add_parser("train", help="train a head on a folder-per-person dataset")
    p.add_argument("dataset", metavar="DATASET_DIR", help="one sub-folder of photos per person")
    p.add_argument(
        "-o",
        "--output",
        default="face-head.json",
        metavar="FILE",
        help="where to save the head (default face-head.json)",
    )
    p.add_argument(
        "--split",
        choices=("people", "images"),
        default="people",
        help="hold out whole people (default) or some photos of each person",
    )
    p.add_argument("--test-fraction", type=float, default=0.25, help="share held out for testing (default 0.25)")
    p.add_argument(
        "--use",
        choices=("best", "projection", "classifier"),
        default="best",
        help="which head the saved file applies (default: the better on the held-out pairs)",
    )
    p.add_argument("--steps", type=int, default=300, help="projection-head training steps (default 300)")
    p.add_argument("--margin", type=float, default=0.2, help="triplet-loss margin (default 0.2)")
    p.add_argument(
        "--features",
        choices=("both", "abs", "chi2"),
        default="both",
        help="the classifier's pair features: |f1-f2|, chi-square terms, or both (default)",
    )
    p.add_argument("--seed", type=int, default=0)
    _pipeline_options(p), _gallery_option(p), _json_option(p)
    p.set_defaults(func=cmd_train)
