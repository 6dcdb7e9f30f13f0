"""`neuralens train-style`: argument parsing and printing over ``neuralens.fast.train`` (training.py).

The flags come from the TrainOptions declarations (neuralens/fast/options.py)."""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings

from .. import options
from ..errors import Interrupted
from .options import TrainOptions
from .training import train

TRAIN_EXAMPLES = """examples:
  neuralens train-style starry_night.jpg --photos photos/ -o starry-night.pt --minutes 60
  neuralens train-style the_scream.jpg --photos photos/ -o scream.pt --width 16 --iterations 4000
  neuralens train-style the_scream.jpg --photos photos/ -o scream.pt --architecture johnson   (the paper's network)
  neuralens train-style starry_night.jpg --photos photos/ -o starry-night.pt --checkpoint-every 200
  neuralens train-style starry_night.jpg --photos photos/ -o starry-night.pt --resume starry-night.checkpoint.pt
  neuralens train-style starry_night.jpg --photos photos/ -o small.pt --teacher big.pt --width 16   (distil)
  neuralens train-style starry_night.jpg --photos photos/ -o more.pt --init starry-night --minutes 20   (train further)
then: neuralens stylize photo.jpg --model starry-night.pt -o out.png
"""


def register(subparsers) -> None:
    """Add `train-style` to the top-level parser."""
    p = subparsers.add_parser(
        "train-style",
        help="train a fast (feed-forward) style model for one painting (Johnson et al. 2016)",
        description="Train a network that paints any photo in the style of STYLE in one pass. It learns from "
        "random crops of the photos in --photos (searched recursively; a few hundred varied photos are plenty) "
        "and writes OUT.pt with OUT.json (report), OUT.loss.png (loss curve) and OUT.preview.png (held-out "
        "photos, refreshed every --preview-every seconds). Ctrl-C stops early and still saves the model.",
        epilog=TRAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("style", metavar="STYLE", help="the painting whose style to learn")
    p.add_argument("--photos", required=True, metavar="DIR", help="folder (or quoted pattern) of training photos")
    p.add_argument("-o", "--output", required=True, metavar="OUT.pt", help="the model file to write")
    p.add_argument(
        "--resume",
        metavar="CHECKPOINT",
        default=None,
        help="continue from OUT.checkpoint.pt (with its settings; --minutes/--iterations may change)",
    )
    options.add_arguments(
        p.add_argument_group("training options (Python: TrainOptions fields of the same names)"), TrainOptions
    )
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=run_train)


_default_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, UserWarning) and str(message).startswith("skipped "):
        print(f"warning: {message}", file=sys.stderr, flush=True)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


def run_train(args) -> int:
    values = options.values_from(args, TrainOptions)
    values["progress"] = not args.quiet
    settings = TrainOptions(**values).validate()
    command = "neuralens " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = _show_warning  # 'warning: skipped 2 unreadable photo(s): ...', at once, one line
        result = train(args.style, args.photos, args.output, settings, resume=args.resume, command=command)
    if not args.quiet:
        print(
            f"trained {result.iterations} steps in {result.seconds:.0f} s ({result.images_per_second:.1f} images/s) "
            f"on {result.photos} photos",
            file=sys.stderr,
        )
    for path in [
        result.model_path,
        result.report_path,
        result.loss_plot_path,
        *result.preview_files,
        result.checkpoint_path,
    ]:
        if path is not None:
            print(f"wrote {path}")
    if result.stopped:
        raise Interrupted(f"stopped early at step {result.iterations}; saved the model to {result.model_path}")
    return 0
