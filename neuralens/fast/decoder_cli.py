"""`neuralens train-decoder`: argument parsing and printing over ``decoder_training.train_decoder``.

The flags come from the DecoderTrainOptions declarations (neuralens/fast/decoder_options.py)."""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings

from .. import options
from ..errors import Interrupted
from .cli import _show_warning
from .decoder_options import LOSS_WEIGHTS, DecoderTrainOptions

EXAMPLES = """examples:
  neuralens train-decoder --photos data/photos --styles data/paintings -o decoder.pt --minutes 40
  neuralens train-decoder --photos data/photos --styles data/paintings -o decoder.pt --checkpoint-every 200
  neuralens train-decoder --photos data/photos --styles data/paintings -o decoder.pt --resume decoder.checkpoint.pt
  neuralens train-decoder ... --resume decoder.checkpoint.pt --reconstruction-weight 50 --style-weight 2 --minutes 20
then: neuralens stylize photo.jpg any_painting.jpg --fast --decoder decoder.pt -o out.png
"""


def register(subparsers) -> None:
    """Add `train-decoder` to the top-level parser."""
    p = subparsers.add_parser(
        "train-decoder",
        help="train the decoder of arbitrary-style transfer (AdaIN, Huang & Belongie 2017)",
        description="Train the network that turns VGG19 features with a painting's statistics back into an image, "
        "so that `stylize --fast` paints in any style in one pass. It learns from random crops of the photos in "
        "--photos and the paintings in --styles (both searched recursively; a holdout/ folder inside either is "
        "kept out of training and shown in the preview) and writes OUT.pt with OUT.json (report), OUT.loss.png "
        "and OUT.preview.png (held-out photos x paintings). Ctrl-C stops early and still saves the decoder.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--photos", required=True, metavar="DIR", help="folder (or quoted pattern) of training photos")
    p.add_argument("--styles", required=True, metavar="DIR", help="folder (or quoted pattern) of paintings")
    p.add_argument("-o", "--output", required=True, metavar="OUT.pt", help="the decoder file to write")
    p.add_argument(
        "--resume",
        metavar="CHECKPOINT",
        default=None,
        help="continue from OUT.checkpoint.pt with its settings; the budget, device and precision may change, and "
        "loss weights given replace the checkpoint's (fine-tuning: e.g. --reconstruction-weight 50 --style-weight 2)",
    )
    options.add_arguments(
        p.add_argument_group("training options (Python: DecoderTrainOptions fields of the same names)"),
        DecoderTrainOptions,
    )
    # None: the flag was not given (its default applies, or with --resume the checkpoint's weight).
    p.set_defaults(**dict.fromkeys(LOSS_WEIGHTS))
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=run_train_decoder)


def run_train_decoder(args) -> int:
    from .decoder_training import train_decoder  # noqa: PLC0415 -- loads the encoder; only when asked for

    values = options.values_from(args, DecoderTrainOptions)
    values["progress"] = not args.quiet
    given = {k: values.pop(k) for k in LOSS_WEIGHTS}
    weights = {k: v for k, v in given.items() if v is not None}
    settings = DecoderTrainOptions(**values, **weights).validate()
    command = "neuralens " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = _show_warning  # 'warning: skipped 2 unreadable image(s): ...', one line
        result = train_decoder(
            args.photos, args.styles, args.output, settings, resume=args.resume, command=command, **weights
        )
    if not args.quiet:
        print(
            f"trained {result.iterations} steps in {result.seconds:.0f} s ({result.images_per_second:.2f} images/s) "
            f"on {result.photos} photos and {result.paintings} paintings",
            file=sys.stderr,
        )
    for path in [result.model_path, result.report_path, result.loss_plot_path, *result.preview_files]:
        if path is not None:
            print(f"wrote {path}")
    if result.checkpoint_path is not None:
        print(f"wrote {result.checkpoint_path}")
    if result.stopped:
        raise Interrupted(f"stopped early at step {result.iterations}; saved the decoder to {result.model_path}")
    return 0
