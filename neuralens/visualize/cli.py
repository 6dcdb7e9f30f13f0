"""`neuralens sweep` and `neuralens visualize units | maximize | reconstructions`: argument parsing and files
over the neuralens.visualize API."""

from __future__ import annotations

import argparse
import sys
from typing import List

from .. import cliargs
from .. import options as option_specs
from ..errors import Interrupted, NeuralensError
from ..imageio import check_output_path, load_image, save_image
from ..style import RECONSTRUCT_DEFAULTS, StyleOptions
from .maximize import maximize_unit
from .receptive import receptive_field
from .reconstructions import reconstruction_sheet
from .sweeps import convert_value, normalise_vary, option_fields, save_sweep, sweep
from .units import top_patches, units_sheet

SWEEP_EXAMPLES = """examples:
  neuralens sweep photo.jpg starry_night.jpg --vary style-weight=1e3,1e4,1e5 --size 256 -o sheet.png
  neuralens sweep photo.jpg starry_night.jpg --vary style-weight=1e3,1e5 --vary content-layers=relu2_2,relu4_2 -o sheet.png
  neuralens sweep photo.jpg scream.jpg --vary style-layers=relu1_1+relu2_1,relu1_1+relu2_1+relu3_1 -o layers.png

Every combination (cartesian product) is stylized; the sheet shows one captioned tile per combination and
sheet.json (next to sheet.png) records the settings, final losses, timings and tile files (sheet-01.png, ...).
Any stylize option can be varied, in its command-line spelling; '+' joins the parts of one list value.
"""

UNITS_EXAMPLES = """examples:
  neuralens visualize units --layer relu3_1 --images photos/ -o units.png
  neuralens visualize units --layer relu4_1 --images photos/ --units 0,5,17 --min-distance 2 -o units.png
"""

MAXIMIZE_EXAMPLES = """examples:
  neuralens visualize maximize --layer relu4_1 --unit 17 -o unit17.png
  neuralens visualize maximize --layer relu3_1 --unit 5 --size 192 --iterations 400 --jitter 8 -o unit5.png
"""

RECONSTRUCTIONS_EXAMPLES = """examples:
  neuralens visualize reconstructions photo.jpg -o figure1.png
  neuralens visualize reconstructions photo.jpg --size 128 --iterations 100 -o quick.png   (a minute on a CPU)
"""


def _unit_list(text: str) -> List[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected unit numbers like 0,5,17, got '{text}'") from None


def _add_network_options(p: argparse.ArgumentParser) -> None:
    """--device, --pooling, --weights: declared with the style options (neuralens/style/options.py)."""
    option_specs.add_arguments(p, StyleOptions, only=("device", "pooling", "weights"))


def register(subparsers) -> None:
    """Add `sweep` and `visualize` (units, maximize, reconstructions) to the top-level parser."""
    s = subparsers.add_parser(
        "sweep",
        help="stylize with every combination of some settings; compare them on one labelled sheet",
        description="Stylize CONTENT with STYLE once per combination of the --vary settings and assemble a "
        "contact sheet with each tile captioned by its settings, plus a JSON of the runs.",
        epilog=SWEEP_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("content", metavar="CONTENT", help="photo to stylize")
    s.add_argument("styles", nargs="+", metavar="STYLE", help="painting(s) whose style to use")
    s.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        required=True,
        help="a stylize option and the values to try (repeat for more options: every combination runs)",
    )
    s.add_argument(
        "--columns",
        type=cliargs.positive_int,
        default=None,
        help="tiles per row (default: the last --vary's values, or one row of up to 6)",
    )
    s.add_argument(
        "-o", "--output", required=True, help="the sheet (.png, .jpg, ...); NAME.json and NAME-01.png ... go beside it"
    )
    s.add_argument("--quiet", action="store_true", help="no progress messages")
    defaults = StyleOptions()
    fixed = s.add_argument_group("options applied to every run (as for `neuralens stylize`)")
    for name, spec in option_fields().items():
        fixed.add_argument(
            option_specs.flag_of(name, spec),
            dest=f"fixed_{name}",
            metavar="VALUE",
            default=None,
            help=option_specs.help_text(spec, getattr(defaults, name)),
        )
    s.set_defaults(func=run_sweep)

    v = subparsers.add_parser(
        "visualize",
        help="see inside the network: top patches of units, unit images, layer reconstructions",
        description="Visualise what VGG19's layers respond to (Zeiler & Fergus 2014; Gatys et al. 2015).",
    )
    vsub = v.add_subparsers(dest="visualize_command", metavar="WHAT")
    v.set_defaults(func=lambda args: _missing(v))

    u = vsub.add_parser(
        "units",
        help="the 9 image patches that activate each unit of a layer most",
        description="For units (channels) of LAYER, find the image patches from IMAGES that activate "
        "each unit most, cropped to the unit's receptive field; one row per unit.",
        epilog=UNITS_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    u.add_argument("--layer", required=True, help="a VGG19 layer, e.g. relu3_1")
    u.add_argument("--images", nargs="+", required=True, metavar="PATH", help="image files and/or folders of images")
    which = u.add_mutually_exclusive_group()
    which.add_argument("--units", type=_unit_list, default=None, help="comma-separated unit numbers, e.g. 0,5,17")
    which.add_argument(
        "--count",
        type=cliargs.positive_int,
        default=8,
        help="show the units with the strongest peak activation, this many (default %(default)s)",
    )
    u.add_argument("--top", type=cliargs.positive_int, default=9, help="patches per unit (default %(default)s)")
    u.add_argument(
        "--size",
        type=cliargs.positive_int,
        default=224,
        help="long side the images are resized to (default %(default)s)",
    )
    u.add_argument(
        "--min-distance",
        type=cliargs.positive_int,
        default=1,
        help="skip positions closer than this many activation cells to a stronger patch of the same "
        "unit in the same image (1: the exact strongest positions; default %(default)s)",
    )
    u.add_argument("--tile", type=cliargs.positive_int, default=None, help="display size of a patch in pixels")
    _add_network_options(u)
    u.add_argument("-o", "--output", required=True, help="the sheet image")
    u.add_argument("--quiet", action="store_true", help="no messages")
    u.set_defaults(func=run_units)

    m = vsub.add_parser(
        "maximize",
        help="synthesise an image that maximises one unit (gradient ascent)",
        description="Start from grey noise and climb the gradient of the unit's mean activation, "
        "with jitter, L2 decay, blur and clamping to keep the image image-like.",
        epilog=MAXIMIZE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    m.add_argument("--layer", required=True, help="a VGG19 layer, e.g. relu4_1")
    m.add_argument("--unit", type=int, required=True, help="the unit (channel) number")
    m.add_argument(
        "--size", type=cliargs.positive_int, default=128, help="side of the square image (default %(default)s)"
    )
    m.add_argument(
        "--iterations", type=cliargs.non_negative_int, default=200, help="ascent steps (default %(default)s)"
    )
    m.add_argument(
        "--learning-rate", type=cliargs.number, default=0.05, help="Adam step in pixel units (default %(default)s)"
    )
    m.add_argument(
        "--decay", type=cliargs.number, default=0.01, help="L2 decay towards grey per step (default %(default)s)"
    )
    m.add_argument(
        "--blur-every",
        type=cliargs.non_negative_int,
        default=4,
        help="blur every N steps, 0: never (default %(default)s)",
    )
    m.add_argument("--blur-sigma", type=cliargs.number, default=0.5, help="blur radius in pixels (default %(default)s)")
    m.add_argument(
        "--jitter",
        type=cliargs.non_negative_int,
        default=4,
        help="random shift in pixels before each step (default %(default)s)",
    )
    m.add_argument("--seed", type=int, default=0, help="default %(default)s")
    _add_network_options(m)
    m.add_argument("-o", "--output", required=True, help="the image")
    m.add_argument("--quiet", action="store_true", help="no messages")
    m.set_defaults(func=run_maximize)

    r = vsub.add_parser(
        "reconstructions",
        help="content and style reconstructions layer by layer (Gatys et al. Figure 1)",
        description="Reconstruct IMAGE from the features of relu1_2 ... relu5_2 (content) and from the "
        "Gram matrices of growing layer sets relu1_1 ... relu5_1 (style), and lay them out.",
        epilog=RECONSTRUCTIONS_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("image", metavar="IMAGE")
    r.add_argument("--size", type=cliargs.positive_int, default=256, help="long side in pixels (default %(default)s)")
    r.add_argument(
        "--iterations",
        type=cliargs.positive_int,
        default=RECONSTRUCT_DEFAULTS["iterations"],
        help="optimiser steps per reconstruction (default %(default)s)",
    )
    option_specs.add_arguments(r, StyleOptions, only=("optimizer", "seed"))
    _add_network_options(r)
    r.add_argument("-o", "--output", required=True, help="the sheet image")
    r.add_argument("--quiet", action="store_true", help="no messages")
    r.set_defaults(func=run_reconstructions)


def _missing(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _say(args, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)


def run_sweep(args) -> int:
    output = check_output_path(args.output)
    axes = normalise_vary(args.vary)
    varied = {key for key, _ in axes}
    fixed = {}
    for name in option_fields():
        text = getattr(args, f"fixed_{name}")
        if text is None:
            continue
        if name in varied:
            flag = option_specs.flag_of(name, option_fields()[name])
            raise NeuralensError(f"{flag} is both fixed and varied; drop one of them")
        fixed[name] = convert_value(name, text)
    contents = [args.content] + list(args.styles)
    for path in contents:
        load_image(path)  # fail before any work on a missing or broken file

    def report(index: int, total: int, caption: str) -> None:
        _say(args, f"run {index + 1}/{total}: {caption}")

    styles = args.styles if len(args.styles) > 1 else args.styles[0]
    result = sweep(args.content, styles, args.vary, columns=args.columns, callback=report, **fixed)
    json_path = save_sweep(result, output, args.content, args.styles)
    _say(
        args, f"wrote {output} ({len(result.runs)} tiles, {result.layout.columns}x{result.layout.rows}) and {json_path}"
    )
    if result.stopped:
        raise Interrupted(f"stopped early; the sheet has the {len(result.runs)} finished runs")
    return 0


def run_units(args) -> int:
    output = check_output_path(args.output)
    rf = receptive_field(args.layer)
    results = top_patches(
        args.images,
        args.layer,
        units=args.units,
        count=args.count,
        top=args.top,
        size=args.size,
        min_distance=args.min_distance,
        device=args.device,
        weights=args.weights,
        pooling=args.pooling,
    )
    save_image(units_sheet(results, tile=args.tile), output)
    _say(
        args,
        f"wrote {output}: {len(results)} units of {args.layer} (receptive field {rf.size} px, stride {rf.jump} px)",
    )
    return 0


def run_maximize(args) -> int:
    output = check_output_path(args.output)
    result = maximize_unit(
        args.layer,
        args.unit,
        size=args.size,
        iterations=args.iterations,
        learning_rate=args.learning_rate,
        decay=args.decay,
        blur_every=args.blur_every,
        blur_sigma=args.blur_sigma,
        jitter=args.jitter,
        seed=args.seed,
        device=args.device,
        weights=args.weights,
        pooling=args.pooling,
    )
    save_image(result.image, output)
    _say(
        args,
        f"wrote {output}: {args.layer} unit {args.unit} mean activation {result.start_activation:.4g} -> "
        f"{result.final_activation:.4g} ({result.seconds:.1f} s)",
    )
    if result.stopped:
        raise Interrupted(f"stopped early after {len(result.history)} steps; wrote the image so far to {output}")
    return 0


def run_reconstructions(args) -> int:
    output = check_output_path(args.output)

    def report(index: int, total: int, caption: str) -> None:
        _say(args, f"reconstruction {index + 1}/{total}: {caption}")

    result = reconstruction_sheet(
        args.image,
        size=args.size,
        iterations=args.iterations,
        progress=report,
        optimizer=args.optimizer,
        seed=args.seed,
        device=args.device,
        weights=args.weights,
        pooling=args.pooling,
    )
    save_image(result.sheet, output)
    _say(args, f"wrote {output} ({len(result.reconstructions)} reconstructions)")
    if result.reconstructions and result.reconstructions[-1].result.stopped:
        raise Interrupted(f"stopped early; the sheet has the {len(result.reconstructions)} finished reconstructions")
    return 0
