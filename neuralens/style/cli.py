"""`neuralens stylize | reconstruct | demo`: argument parsing and file handling over the style API.

The flags come from the StyleOptions declarations (neuralens/style/options.py): names, types, choices,
defaults and help exist once, there."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import List, Optional

import torch

from .. import __version__, cliargs, options
from ..distributed.options import QueueOptions
from ..errors import Interrupted, NeuralensError
from ..fast.apply import ApplyOptions, stylize_files
from ..fast.arbitrary import ArbitraryOptions
from ..imageio import (
    SAMPLES,
    check_output_path,
    check_writable_folder,
    find_images,
    is_image_name,
    save_image,
    save_result,
)
from .options import RECONSTRUCT_DEFAULTS, StyleOptions
from .results import StyleResult
from .transfer import StyleTransfer, reconstruct_options

STYLIZE_EXAMPLES = """examples:
  neuralens stylize photo.jpg starry_night.jpg -o out.png
  neuralens stylize photo.jpg starry_night.jpg --size 768 --style-weight 3e4 --preserve-color luminance -o out.jpg
  neuralens stylize photo.jpg a.jpg b.jpg --style-blend 0.7 0.3 -o blend.png
  neuralens stylize photos/ starry_night.jpg -o stylized/          (every image in a folder)
  neuralens stylize photo.jpg style.jpg --style-layers relu1_1:0.5,relu2_1:0.5 --init noise --seed 3 -o out.png
  neuralens stylize photo.jpg sky.jpg:sky_mask.png ground.jpg:ground_mask.png -o regions.png
  neuralens stylize photo.jpg starry_night.jpg --fine-style the_scream.jpg -o mixed_scales.png
  neuralens stylize photo.jpg starry_night.jpg --size 4000 -o print.tif      (tiles when memory runs short)
  neuralens stylize photo.jpg --model starry-night -o fast.png               (a trained model: one pass)
  neuralens stylize photos/ --model my_style.pt --strength 0.8 -o stylized/
  neuralens stylize photo.jpg any_painting.jpg --fast -o fast.png             (any painting, one pass: AdaIN)
  neuralens stylize photo.jpg a.jpg b.jpg --fast --style-blend 0.7 0.3 --strength 0.8 -o blend.png
  neuralens stylize photo.jpg painting.jpg --fast --refine 50 -o refined.png  (fast result, then 50 evaluations)
  neuralens stylize photos/ starry_night.jpg -o out/ --broker redis://HOST:6379/0 --storage file:///shared/dir
                                                      (on `neuralens worker` processes, one progress bar)
"""

RECONSTRUCT_EXAMPLES = """examples:
  neuralens reconstruct photo.jpg --content-layer relu3_2 -o content_relu3_2.png
  neuralens reconstruct painting.jpg --style-layers relu1_1,relu2_1,relu3_1 -o texture.png
"""


# Fields that stylize and reconstruct set from flags of their own or not at all.
RECONSTRUCT_FLAGS = (
    "size",
    "iterations",
    "optimizer",
    "learning_rate",
    "seed",
    "pooling",
    "device",
    "precision",
    "channels_last",
    "weights",
    "tv_weight",
)


def _add_output_options(p: argparse.ArgumentParser) -> None:
    """Options about files and display, shared by stylize and reconstruct."""
    p.add_argument(
        "--save-every",
        type=cliargs.positive_int,
        metavar="N",
        default=None,
        help="also write the current image every N evaluations next to the output (NAME.0050.png)",
    )
    p.add_argument(
        "--report", metavar="JSON", default=None, help="write settings, per-evaluation losses and timings to this file"
    )
    p.add_argument("--quiet", action="store_true", help="no progress display (sets progress off)")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .tif, ...) or folder")


def register(subparsers) -> None:
    """Add the style-transfer subcommands to the top-level parser."""
    p = subparsers.add_parser(
        "stylize",
        help="paint a photo in the style of a painting (Gatys et al. 2015)",
        description="Paint CONTENT in the style of STYLE (several styles are blended). CONTENT may be a folder or "
        "several files: each is stylized in turn with the style computed once, into the folder -o.",
        epilog=STYLIZE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "content", metavar="CONTENT", help="photo to stylize, or a folder / quoted pattern ('photos/*.jpg') of photos"
    )
    p.add_argument(
        "styles",
        nargs="*",
        metavar="STYLE",
        help="painting(s) whose style to use; STYLE:MASK paints that style only where MASK (aligned with "
        "the photo; white = here, grey = partly) is on. Not with --model",
    )
    p.add_argument(
        "--content",
        dest="more_content",
        action="append",
        default=[],
        metavar="FILE",
        help="one more photo to stylize with the same style (may repeat)",
    )
    options.add_arguments(
        p.add_argument_group("style options (Python: StyleOptions fields of the same names)"), StyleOptions
    )
    fast = p.add_argument_group(
        "a trained model instead of STYLE (one forward pass; --size, --preserve-color, --device and --precision "
        "apply too)"
    )
    options.add_arguments(fast, ApplyOptions, only=("model", "strength", "engine"))
    arbitrary = p.add_argument_group(
        "any painting in one pass (--fast, AdaIN; --strength, --size, --style-blend, --style-scale, STYLE:MASK, "
        "--preserve-color, --device and --precision apply too)"
    )
    options.add_arguments(arbitrary, ArbitraryOptions)
    queue = p.add_argument_group(
        "on a job queue (optimisation or --model; Python: neuralens.distributed.QueueOptions, docs/scale-out.md)"
    )
    options.add_arguments(queue, QueueOptions)
    _add_output_options(p)
    p.set_defaults(func=run_stylize)

    r = subparsers.add_parser(
        "reconstruct",
        help="see what a layer encodes: rebuild an image from its features or Gram matrices",
        description="Start from white noise and optimise until the image's VGG19 features at one layer "
        "(--content-layer) or its Gram matrices at a set of layers (--style-layers) match IMAGE's "
        "(Gatys et al. 2015, Figure 1).",
        epilog=RECONSTRUCT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("image", metavar="IMAGE")
    what = r.add_mutually_exclusive_group(required=True)
    what.add_argument("--content-layer", help="one layer, e.g. relu3_2")
    what.add_argument("--style-layers", help="comma-separated layers, e.g. relu1_1,relu2_1,relu3_1")
    options.add_arguments(r, StyleOptions, only=RECONSTRUCT_FLAGS, defaults_from=StyleOptions(**RECONSTRUCT_DEFAULTS))
    _add_output_options(r)
    r.set_defaults(func=run_reconstruct)

    demo = subparsers.add_parser(
        "demo",
        help="stylize the bundled sample images (a few minutes on a CPU)",
        description="Stylize the bundled photo with the bundled paintings (optimisation), then with every built-in "
        "feed-forward model (one pass each), and write the results to a folder.",
    )
    demo.add_argument("-o", "--output", default="neuralens-demo", help="folder for the results (default %(default)s)")
    demo.add_argument(
        "--size", type=cliargs.positive_int, default=384, help="long side in pixels (default %(default)s)"
    )
    options.add_arguments(demo, StyleOptions, only=("device",))
    demo.add_argument("--quiet", action="store_true", help="no progress display")
    demo.set_defaults(func=run_demo)


def _options(args, **extra) -> StyleOptions:
    """StyleOptions from parsed arguments (the fields the subcommand has) and ``extra``."""
    values = options.values_from(args, StyleOptions)
    values.update(extra)
    values["progress"] = not args.quiet
    return StyleOptions(**values).validate()


def _split_style_masks(specs: List[str]) -> tuple:
    """'sky.jpg:sky_mask.png' -> ('sky.jpg', 'sky_mask.png'); a plain path (even one with a colon, such as
    C:\\art.jpg) -> (path, None)."""
    styles, masks = [], []
    for spec in specs:
        style, sep, mask = spec.rpartition(":")
        if sep and style and mask and not Path(spec).exists() and is_image_name(mask):
            styles.append(style)
            masks.append(mask)
        else:
            styles.append(spec)
            masks.append(None)
    return styles, masks


def _step_saver(output: Path, every: Optional[int]):
    """A callback that writes the current image every ``every`` evaluations as OUTPUT_STEM.NNNN.png."""
    if not every:
        return None

    def save(step) -> None:
        if step.iteration % every == 0:
            save_image(step.image(), output.with_name(f"{output.stem}.{step.iteration:04d}{output.suffix}"))

    return save


def _write_report(path: Path, settings: StyleOptions, results: List[tuple]) -> None:
    report = {
        "neuralens": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "settings": settings.to_dict(),
        "runs": [dict(content=str(c), output=str(o), **r.to_dict()) for c, o, r in results],
    }
    Path(path).write_text(json.dumps(report, indent=1, default=str))


def _report_path(report: Optional[str]) -> Optional[Path]:
    """The --report file, checked for being writable before any work."""
    if not report:
        return None
    path = Path(report)
    if path.is_dir():
        raise NeuralensError(f"{path}: is a folder, not a file name (--report)")
    check_writable_folder(path.parent)
    return path


def _save(result: StyleResult, output: Path, quiet: bool) -> None:
    save_result(result.image, output)
    if not quiet:
        print(
            f"wrote {output} ({result.image.width}x{result.image.height}, {result.timings['total']:.1f} s)",
            file=sys.stderr,
        )


def _finish(results: List[tuple], settings: StyleOptions, report: Optional[Path]) -> int:
    if report:
        _write_report(report, settings, results)
    if results and results[-1][2].stopped:
        raise Interrupted(f"stopped early; wrote the current image to {results[-1][1]}")
    return 0


def output_paths(contents: List[Path], output: Path, several: bool) -> List[Path]:
    """Where each content image's result goes: into the folder ``output`` (as NAME.png) when there are
    several or ``output`` is an existing folder, else ``output`` itself. Checked for being writable."""
    if several or output.is_dir():
        if several and output.suffix and not output.is_dir():
            raise NeuralensError(f"{output}: several content images need a folder as output")
        outs = [output / f"{content.stem}.png" for content in contents]
    else:
        outs = [output]
    for out in outs[:1]:
        check_output_path(out)
    return outs


def _queue(args) -> Optional[QueueOptions]:
    """The job queue to run on (None: in this process), checked; --save-every needs the images here."""
    if args.broker is None:
        QueueOptions(None, args.storage).validate()  # --storage alone is a mistake
        return None
    if args.fast:
        raise NeuralensError("--fast runs here only; use --model or STYLE images with --broker")
    if args.save_every:
        raise NeuralensError("--save-every is not available with --broker (the images are made on the workers)")
    return QueueOptions(args.broker, args.storage).validate()


def run_stylize(args) -> int:
    queue = _queue(args)
    if args.fast:
        from ..fast.arbitrary_cli import run_arbitrary_stylize  # noqa: PLC0415

        return run_arbitrary_stylize(args)
    if args.model is not None:
        return run_fast_stylize(args, queue)
    if not args.styles:
        raise NeuralensError("give at least one STYLE image, or a trained model with --model")
    styles, masks = _split_style_masks(args.styles)
    settings = _options(args, style_masks=masks if any(masks) else None)
    names = [args.content] + list(args.more_content)
    contents = find_images(names)
    several = len(contents) > 1 or Path(args.content).is_dir() or contents[0] != Path(args.content)
    outputs = output_paths(contents, Path(args.output), several)
    report = _report_path(args.report)
    for c in contents:  # fail before any work for a missing file
        if not c.exists():
            raise NeuralensError(f"{c}: no such file")
    if queue is not None:
        from ..distributed.client import stylize_batch  # noqa: PLC0415 -- Celery and Redis only when asked

        results = stylize_batch(queue, styles, settings, list(zip(contents, outputs)), args.quiet)
        for _, out, result in results:
            if not args.quiet:
                print(f"wrote {out} ({result.job.worker})", file=sys.stderr)
        return _finish(results, settings, report)
    transfer = StyleTransfer(styles, settings)
    results = []
    for content, out in zip(contents, outputs):
        result = transfer.run(content, callback=_step_saver(out, args.save_every))
        _save(result, out, args.quiet)
        results.append((content, out, result))
        if result.stopped:
            break
    return _finish(results, settings, report)


def run_fast_stylize(args, queue: Optional[QueueOptions] = None) -> int:
    """`stylize CONTENT --model NAME|PATH`: each photo through the model, loaded once (or on the queue's
    workers)."""
    if args.styles:
        raise NeuralensError("give either STYLE images or --model, not both")
    settings = ApplyOptions(**options.values_from(args, ApplyOptions)).validate()
    contents = find_images([args.content] + list(args.more_content))
    several = len(contents) > 1 or Path(args.content).is_dir() or contents[0] != Path(args.content)
    outputs = output_paths(contents, Path(args.output), several)
    for c in contents:
        if not c.exists():
            raise NeuralensError(f"{c}: no such file")
    if queue is not None:
        from ..distributed.client import fast_stylize_batch  # noqa: PLC0415

        for _, out, result in fast_stylize_batch(queue, settings, list(zip(contents, outputs)), args.quiet):
            if not args.quiet:
                print(f"wrote {out} ({result.job.worker})", file=sys.stderr)
        return 0
    for _, out, seconds in stylize_files(zip(contents, outputs), settings):
        if not args.quiet:
            print(f"wrote {out} ({seconds:.2f} s)", file=sys.stderr)
    return 0


def run_reconstruct(args) -> int:
    output = output_paths([Path(args.image)], Path(args.output), several=False)[0]
    report = _report_path(args.report)
    values = options.values_from(args, StyleOptions)
    values.pop("style_layers", None)  # the layers to match come from --content-layer / --style-layers
    settings = reconstruct_options(args.content_layer, args.style_layers, progress=not args.quiet, **values)
    result = StyleTransfer(args.image, settings).run(args.image)
    _save(result, output, args.quiet)
    return _finish([(args.image, output, result)], settings, report)


def run_demo(args) -> int:
    folder = Path(args.output)
    check_writable_folder(folder)
    content = SAMPLES / "tubingen.jpg"
    started = time.perf_counter()
    for style_name in ("starry_night", "the_scream"):
        settings = StyleOptions(size=args.size, device=args.device, progress=not args.quiet)
        result = StyleTransfer(SAMPLES / f"{style_name}.jpg", settings).run(content)
        out = folder / f"tubingen_{style_name}.png"
        save_result(result.image, out)
        print(f"wrote {out} ({result.timings['total']:.0f} s)", file=sys.stderr)
        if result.stopped:
            raise Interrupted(f"stopped early; wrote the current image to {out}")
    # Then the same photo through every built-in feed-forward model: one pass each, a fraction of a second.
    from ..fast.model import builtin_names, load_model  # noqa: PLC0415

    for name in builtin_names():
        model_started = time.perf_counter()
        image = load_model(name, device=args.device).stylize(content, size=args.size)
        out = folder / f"tubingen_fast_{name}.png"
        save_result(image, out)
        print(f"wrote {out} ({time.perf_counter() - model_started:.1f} s, model {name})", file=sys.stderr)
    print(f"demo done in {time.perf_counter() - started:.0f} s: results in {folder.resolve()}")
    return 0
