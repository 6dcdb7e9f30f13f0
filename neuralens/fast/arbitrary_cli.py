"""`neuralens stylize CONTENT STYLE [STYLE ...] --fast`: arbitrary-style transfer in one pass (``arbitrary.py``),
optionally refined by N evaluations of the optimisation engine (``--refine N``).

The flags are stylize's own (StyleOptions, ApplyOptions' --strength) and ArbitraryOptions' (--fast, --decoder,
--refine); ``neuralens/style/cli.py`` hands over to ``run_arbitrary_stylize`` when --fast is given."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import List

from .. import __version__, options
from ..errors import Interrupted, NeuralensError
from ..imageio import find_images, image_to_tensor, load_image, resize_long_side, save_result, tensor_to_image
from ..style.options import StyleOptions
from .apply import ApplyOptions
from .arbitrary import ArbitraryModel, ArbitraryOptions, StyleCode, finish_colour, load_arbitrary


def refine_options(settings: StyleOptions, fast_image, evaluations: int) -> StyleOptions:
    """The StyleOptions of refining a fast result: one scale (the output size), ``evaluations`` evaluations,
    starting from ``fast_image`` (a PIL image, as ``--init IMAGE`` takes a file), everything else as given."""
    return dataclasses.replace(settings, init=fast_image, scales=1, iterations=evaluations).validate()


def stylize_fast(
    model: ArbitraryModel,
    content: Path,
    codes: List[StyleCode],
    settings: StyleOptions,
    strength: float,
    masks,
):
    """One photo through the fast path at ``settings.size``: the PIL image (colour preserved as asked)."""
    photo = resize_long_side(load_image(content), settings.size)
    x = image_to_tensor(photo)
    out = model.stylize_tensor(x, codes, strength, settings.style_blend, masks)
    return tensor_to_image(finish_colour(out, x, settings.preserve_color))


def run_arbitrary_stylize(args) -> int:
    """`stylize CONTENT STYLE... --fast [--refine N]`: the style statistics once, then each photo in one pass."""
    from ..style.cli import _options, _report_path, _split_style_masks, output_paths  # noqa: PLC0415
    from ..style.targets import load_mask  # noqa: PLC0415

    if args.model is not None:
        raise NeuralensError("give either --fast (any STYLE image) or --model (a trained model), not both")
    if not args.styles:
        raise NeuralensError("--fast needs at least one STYLE image")
    fast = ArbitraryOptions(**options.values_from(args, ArbitraryOptions)).validate()
    strength = options.check_value("strength", options.specs(ApplyOptions)["strength"], args.strength)
    styles, masks = _split_style_masks(args.styles)
    settings = _options(args, style_masks=masks if any(masks) else None)
    for name, flag in (("content_mask", "--content-mask"), ("fine_style", "--fine-style")):
        if getattr(settings, name) is not None:
            raise NeuralensError(f"{flag} works with the optimisation only, not with --fast")
    if settings.style_blend is not None and len(settings.style_blend) != len(styles):
        raise NeuralensError(f"--style-blend has {len(settings.style_blend)} weights for {len(styles)} styles")
    contents = find_images([args.content] + list(args.more_content))
    several = len(contents) > 1 or Path(args.content).is_dir() or contents[0] != Path(args.content)
    outputs = output_paths(contents, Path(args.output), several)
    report = _report_path(args.report)
    for path in [*contents, *styles, *(m for m in masks if m)]:
        if not Path(path).exists():
            raise NeuralensError(f"{path}: no such file")
    mask_tensors = [load_mask(m) if m else None for m in masks] if any(masks) else None

    model = load_arbitrary(fast.decoder, settings.device, settings.precision)
    style_size = max(16, round(settings.size * settings.style_scale))
    codes = [model.encode_style(s, style_size) for s in styles]
    runs: List[dict] = []
    stopped = False
    for content, out in zip(contents, outputs):
        started = time.perf_counter()
        image = stylize_fast(model, content, codes, settings, strength, mask_tensors)
        fast_seconds = time.perf_counter() - started
        run = {"content": str(content), "output": str(out), "fast_seconds": round(fast_seconds, 3)}
        if fast.refine:
            from ..style.transfer import StyleTransfer  # noqa: PLC0415

            result = StyleTransfer(styles, refine_options(settings, image, fast.refine)).run(content)
            image, stopped = result.image, result.stopped
            run["refine"] = result.to_dict()
        save_result(image, out)
        seconds = time.perf_counter() - started
        run["seconds"] = round(seconds, 3)
        runs.append(run)
        if not args.quiet:
            print(f"wrote {out} ({image.width}x{image.height}, {seconds:.2f} s)", file=sys.stderr)
        if stopped:
            break
    if report:
        _write_report(report, settings, fast, strength, model, runs)
    if stopped:
        raise Interrupted(f"stopped early; wrote the current image to {runs[-1]['output']}")
    return 0


def _write_report(
    path: Path, settings: StyleOptions, fast: ArbitraryOptions, strength: float, model, runs: List[dict]
) -> None:
    report = {
        "neuralens": __version__,
        "settings": {**settings.to_dict(), **dataclasses.asdict(fast), "strength": strength},
        "model": model.to_dict(),
        "runs": runs,
    }
    Path(path).write_text(json.dumps(report, indent=1, default=str))
