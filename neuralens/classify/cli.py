"""`neuralens classify train | evaluate | predict | export`: parsing and printing over neuralens.classify."""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
from pathlib import Path
from typing import Callable, Iterator, List, Optional

from .. import cliargs
from .. import options as option_specs
from ..errors import NeuralensError
from ..progress import Progress
from .evaluation import Evaluation
from .model import Classifier
from .options import ClassifyOptions

EXAMPLES = """examples:
  neuralens classify train photos/ -o pets.pt                  (photos/cat/*.jpg, photos/dog/*.jpg, ...)
  neuralens classify train photos/ -o pets.pt --head mlp --augment 4
  neuralens classify train photos/ -o pets.pt --backbone vgg19 --fine-tune 3
  neuralens classify evaluate pets.pt test-photos/ --json
  neuralens classify predict pets.pt new.jpg --top-k 3
  neuralens classify predict pets.pt folder/ -o predictions.csv
  neuralens classify export pets.pt -o pets.onnx

Features are cached (by file content, backbone and layer): training again with other head settings takes
seconds. A folder with train/ and val/ sub-folders (each with one folder per class) keeps that split.
"""


@contextlib.contextmanager
def _counter(what: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A ``(done, total)`` callback shown through neuralens.progress (a bar on a terminal, lines elsewhere)."""
    with Progress(None, what=what, unit="image", enabled=enabled) as bar:

        def update(done: int, total: int) -> None:
            if bar.total != total:
                bar.set_total(total)
            bar.update(done - bar.count)
            if done >= total:
                bar.close()  # its last line before the next stage's

        yield update


def _log(line: str) -> None:
    print(line, file=sys.stderr)


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _print_evaluation(evaluation: Evaluation, title: str) -> None:
    print(f"{title}: accuracy {_percent(evaluation.accuracy)} on {len(evaluation.true)} photos")
    width = max(len(c) for c in evaluation.classes)
    print(f"  {'class':<{width}}  precision  recall  photos")
    for row in evaluation.per_class():
        print(
            f"  {row['class']:<{width}}  {_percent(row['precision']):>9}  {_percent(row['recall']):>6}  {row['support']:>6}"
        )
    matrix = evaluation.confusion()
    print("  confusion (rows: true, columns: predicted):")
    for name, counts in zip(evaluation.classes, matrix):
        print(f"  {name:<{width}}  " + " ".join(f"{int(c):>5}" for c in counts))


def _warn_skipped(failed) -> None:
    if failed:
        _log(f"warning: skipped {len(failed)} unreadable file(s): " + "; ".join(f"{p} ({why})" for p, why in failed))


def cmd_train(args: argparse.Namespace) -> int:
    from .training import train  # noqa: PLC0415 -- torch and the backbones load only for the commands that use them

    fields = option_specs.values_from(args, ClassifyOptions)
    command = shlex.join(["neuralens", *sys.argv[1:]]) if sys.argv[1:] else None
    if args.broker is not None or args.storage is not None:
        return _train_on_queue(args, fields, command)
    bars: dict = {}  # one epoch bar per stage, opened at its first epoch (its time left then excludes features)

    def on_epoch(stage: str, epoch: int, row: dict) -> None:
        if stage not in bars:
            for bar in bars.values():
                bar.close()
            total = fields["fine_tune"] if stage == "fine-tune" else fields["epochs"]
            bars[stage] = Progress(total, what=stage, unit="epoch", enabled=not args.quiet)
        accuracy = row.get("val_accuracy")
        bars[stage].update(epoch - bars[stage].count, f"val acc {_percent(accuracy)}" if accuracy is not None else "")

    try:
        with _counter("features") as on_features:
            classifier = train(
                args.data,
                args.output,
                log=_log,
                on_features=None if args.quiet else on_features,
                on_epoch=on_epoch,
                command=command,
                **fields,
            )
    finally:
        for bar in bars.values():
            bar.close()
    report = classifier.report
    if args.json:
        print(json.dumps(report.to_dict(), indent=1, default=str))
        return 0
    print(f"classes: {', '.join(classifier.classes)}")
    print(
        f"train accuracy {_percent(report.train_accuracy)} ({report.train_images} photos), "
        f"validation accuracy {_percent(report.val_accuracy)} ({report.val_images} photos); "
        f"best head epoch {report.history.best_epoch}" + (", fine-tuned block kept" if report.fine_tuned else "")
    )
    if report.validation is not None:
        _print_evaluation(report.validation, "validation")
    seconds = report.seconds
    print(
        f"time: features {seconds['features']:.1f} s ({report.cached_features} of {report.train_images + report.val_images} "
        f"cached before), head {seconds['head']:.1f} s, fine-tune {seconds['fine_tune']:.1f} s, total {seconds['total']:.1f} s"
    )
    for name, path in report.files.items():
        print(f"{name}: {path}")
    return 0


def _train_on_queue(args: argparse.Namespace, fields: dict, command: Optional[str]) -> int:
    """`classify train DATA -o MODEL.pt --broker URL`: the training on a worker, the model and its report files
    copied back beside each other."""
    from ..distributed.client import classify_train_batch  # noqa: PLC0415 -- Celery and Redis only when asked
    from ..distributed.options import QueueOptions  # noqa: PLC0415

    queue = QueueOptions(args.broker, args.storage).validate()
    options = ClassifyOptions(**fields).validate()
    done = classify_train_batch(queue, args.data, args.output, options, command, args.quiet)
    if args.json:
        print(json.dumps(done.to_dict(), indent=1, default=str))
        return 0
    report = done.report
    print(f"classes: {', '.join(report.get('classes') or [])}")
    print(
        f"train accuracy {_percent(report.get('train_accuracy'))}, validation accuracy "
        f"{_percent(report.get('val_accuracy'))}; trained on {done.job.worker}"
    )
    print(f"model: {args.output}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .predict import evaluate  # noqa: PLC0415

    classifier = Classifier.load(args.model, device=args.device)
    with _counter("features") as on_features:
        evaluation, failed = evaluate(classifier, args.folder, args.cache, on_features=on_features)
    _warn_skipped(failed)
    if args.json:
        print(json.dumps(evaluation.to_dict(), indent=1))
    else:
        _print_evaluation(evaluation, str(args.folder))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .predict import predict_files, predictions_csv  # noqa: PLC0415

    classifier = Classifier.load(args.model, device=args.device)
    sources: List[str] = args.images
    if args.output and Path(args.output).suffix.lower() != ".csv":
        raise NeuralensError(f"{args.output}: predictions are written as .csv")
    one_file = len(sources) == 1 and not Path(sources[0]).is_dir()
    with _counter("predict", enabled=not one_file) as on_features:
        predictions, failed = predict_files(classifier, sources, args.top_k, args.cache, on_features=on_features)
    _warn_skipped(failed)
    many = len(predictions) > 1 or any(Path(s).is_dir() for s in sources)
    if args.json:
        print(json.dumps([p.to_dict() for p in predictions], indent=1))
    elif many and not args.output:
        sys.stdout.write(predictions_csv(predictions, args.top_k))
    else:
        for p in predictions:
            print(f"{p.source}: " + ", ".join(f"{name} {100 * prob:.1f} %" for name, prob in p.top))
    if args.output:
        path = Path(args.output)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(predictions_csv(predictions, args.top_k), encoding="utf-8")
        tmp.replace(path)
        _log(f"wrote {len(predictions)} predictions to {path}")
    return 0 if predictions else 2


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_onnx  # noqa: PLC0415

    classifier = Classifier.load(args.model, device="cpu")
    result = export_onnx(classifier, args.output, check=not args.no_check)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        checked = (
            f"checked with onnxruntime on the sample photos: max abs difference {result.max_abs_diff:.2g}"
            if result.max_abs_diff is not None
            else "not checked"
        )
        print(f"{result.path}: {result.bytes / 1e6:.1f} MB, opset {result.opset}; {checked}")
    return 0


def register(subparsers) -> None:
    """Add `neuralens classify` and its subcommands."""
    parser = subparsers.add_parser(
        "classify",
        help="transfer learning: teach a pretrained network your own categories from a folder of photos",
        description="Train a classifier on a pretrained ImageNet backbone from a folder of labelled photos.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="classify_command", metavar="COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    train = sub.add_parser(
        "train",
        help="train a classifier on DATA (one sub-folder of photos per class)",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("data", metavar="DATA", help="folder with one sub-folder per class (or train/ and val/)")
    train.add_argument("-o", "--output", required=True, metavar="MODEL.pt", help="where to save the classifier")
    option_specs.add_arguments(train, ClassifyOptions)
    from ..distributed.options import QueueOptions  # noqa: PLC0415 -- the options only: no Celery, no Redis

    option_specs.add_arguments(train.add_argument_group("on a job queue (docs/scale-out.md)"), QueueOptions)
    train.add_argument("--json", action="store_true", help="print the whole report as JSON")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=cmd_train)

    def model_command(name: str, help: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("model", metavar="MODEL", help="a classifier file (.pt) made by `classify train`")
        p.set_defaults(func=func)
        return p

    evaluate = model_command("evaluate", "accuracy, precision/recall and confusion on a labelled folder", cmd_evaluate)
    evaluate.add_argument("folder", metavar="DIR", help="one sub-folder of photos per class")
    predict = model_command("predict", "the label of images (a folder writes CSV)", cmd_predict)
    predict.add_argument("images", nargs="+", metavar="IMAGE|DIR", help="image files, folders or patterns")
    predict.add_argument(
        "--top-k", type=cliargs.positive_int, default=1, metavar="K", help="show the K best labels (default 1)"
    )
    predict.add_argument("-o", "--output", metavar="FILE.csv", help="write the predictions as CSV")
    for p in (evaluate, predict):
        p.add_argument("--json", action="store_true", help="print JSON")
        option_specs.add_arguments(p, ClassifyOptions, only=("device", "cache"))
    export = model_command("export", "write the classifier as ONNX, checked against onnxruntime", cmd_export)
    export.add_argument("-o", "--output", required=True, metavar="MODEL.onnx", help="the ONNX file to write")
    export.add_argument("--no-check", action="store_true", help="do not compare with onnxruntime")
    export.add_argument("--json", action="store_true", help="print JSON")
