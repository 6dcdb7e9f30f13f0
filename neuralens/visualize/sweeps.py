"""Tuning sweeps: stylize one photo with every combination of a few settings and compare them on one sheet.

``--vary style-weight=1e3,1e4,1e5 --vary content-layers=relu2_2,relu4_2`` runs the 3 x 2 cartesian product;
each tile of the sheet is captioned with its settings. Any StyleOptions field can be varied, named in its
command-line spelling (dashes) or its Python spelling (underscores). Values are separated by commas; a value
that is itself a list (a set of layers, style-blend weights) joins its parts with '+':
``--vary style-layers=relu1_1+relu2_1,relu1_1+relu2_1+relu3_1``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from PIL import Image

from .. import __version__
from .. import options as option_specs
from ..errors import NeuralensError
from ..imageio import ImageLike, check_output_path, save_image
from ..options import Spec
from ..style import StyleOptions, StyleResult, StyleTransfer
from .sheets import SheetLayout, contact_sheet, sheet_layout


def option_fields() -> Dict[str, Spec]:
    """The StyleOptions fields a sweep can vary, {name: Spec}, read from the option declarations (so options
    added to StyleOptions later can be varied without changes here). Fields that change how a run is shown
    or that take images per style (``progress``, ``style_masks``) are left out."""
    return {name: spec for name, spec in option_specs.specs(StyleOptions).items() if spec.sweep}


def field_name(name: str) -> str:
    """The StyleOptions field for a command-line name ('style-weight' or 'style_weight'); NeuralensError if none."""
    fields = option_fields()
    key = name.strip().lstrip("-").replace("-", "_")
    if key not in fields:
        known = ", ".join(sorted(f.replace("_", "-") for f in fields))
        raise NeuralensError(f"cannot vary '{name}': not a stylize option (choose from {known})")
    return key


def _is_list_kind(spec: Spec) -> bool:
    """True for fields whose value is a list (layer specs, style-blend weights): their parts join with '+'."""
    return spec.kind in ("floats", "layers")


def convert_value(name: str, text: str) -> Any:
    """Parse one value of StyleOptions field ``name`` from its command-line text (commas separate the parts
    of list values), as the stylize command line does. 'none' gives None for optional fields. Raises
    NeuralensError for a value of the wrong kind; ranges and layer names are checked by validate()."""
    spec = option_fields()[name]
    label = name.replace("_", "-")
    try:
        return option_specs.parse_text(name, spec, text)
    except option_specs.OptionError as exc:
        raise NeuralensError(f"{label}: {exc.problem}") from None


def parse_vary(spec: str) -> Tuple[str, List[str]]:
    """Split 'style-weight=1e3,1e4' into (field name, value texts); '+' inside a value of a list field
    (layers, weights) becomes ',' ('relu1_1+relu2_1' -> 'relu1_1,relu2_1')."""
    name, sep, values = spec.partition("=")
    if not sep or not name.strip():
        raise NeuralensError(f"--vary '{spec}': expected NAME=VALUE,VALUE,... (e.g. style-weight=1e3,1e4)")
    key = field_name(name)
    texts = [v.strip() for v in values.split(",") if v.strip()]
    if not texts:
        raise NeuralensError(f"--vary {name.strip()}: no values given")
    if _is_list_kind(option_fields()[key]):
        texts = [t.replace("+", ",") for t in texts]
    return key, texts


def _display(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "+".join(_display(v) for v in value)
    if isinstance(value, Mapping):
        return "+".join(f"{k}:{_display(v)}" for k, v in value.items())
    return str(value).replace(",", "+")


def normalise_vary(vary: Union[Mapping[str, Sequence[Any]], Sequence[str]]) -> List[Tuple[str, List[Tuple[str, Any]]]]:
    """The axes of a sweep as [(field, [(label text, value), ...]), ...], in the order given.

    ``vary`` is either {'style-weight': [1e3, 1e4], ...} (values typed, or strings as on the command line) or
    ['style-weight=1e3,1e4', ...]. Raises NeuralensError for an unknown field, a field given twice, no values
    or a value of the wrong kind."""
    if isinstance(vary, Mapping):
        pairs = []
        for name, values in vary.items():
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                values = [values]
            pairs.append((field_name(name), list(values)))
    else:
        pairs = [parse_vary(spec) for spec in vary]
    if not pairs:
        raise NeuralensError("nothing to vary: give at least one --vary NAME=VALUE,VALUE")
    axes, seen = [], set()
    for key, values in pairs:
        if key in seen:
            raise NeuralensError(f"--vary {key.replace('_', '-')} is given twice; list all its values in one --vary")
        seen.add(key)
        if not values:
            raise NeuralensError(f"--vary {key.replace('_', '-')}: no values given")
        entries = []
        for value in values:
            typed = convert_value(key, value) if isinstance(value, str) else value
            entries.append((_display(value) if not isinstance(value, str) else value.replace(",", "+"), typed))
        axes.append((key, entries))
    return axes


@dataclass
class SweepRun:
    """One combination of a sweep: its settings, caption, where its tile is on the sheet, and the result."""

    index: int
    settings: Dict[str, str]  # command-line name -> value as shown in the caption
    values: Dict[str, Any]  # StyleOptions field -> value used
    caption: str
    result: StyleResult = field(repr=False)
    box: Tuple[int, int, int, int] = (0, 0, 0, 0)  # the tile on the sheet (left, top, right, bottom)

    @property
    def image(self) -> Image.Image:
        return self.result.image

    def losses(self) -> Dict[str, float]:
        """The content, style, tv and total loss of the last optimiser step (empty if no step ran)."""
        if not self.result.history:
            return {}
        last = self.result.history[-1]
        return {
            "content": last["content_loss"],
            "style": last["style_loss"],
            "tv": last["tv_loss"],
            "total": last["loss"],
        }

    def to_dict(self) -> dict:
        """Settings, caption, tile box and size, final losses, steps, timings; JSON-ready."""
        return {
            "index": self.index,
            "settings": self.settings,
            "values": self.values,
            "caption": self.caption,
            "box": list(self.box),
            "size": list(self.image.size),
            "losses": self.losses(),
            "steps": len(self.result.history),
            "timings": self.result.timings,
            "stopped": self.result.stopped,
        }


@dataclass
class SweepResult:
    """A finished (or interrupted) sweep: the sheet, its layout, the runs in order, and the base options."""

    sheet: Image.Image
    layout: SheetLayout
    runs: List[SweepRun]
    axes: List[Tuple[str, List[str]]]  # (field, value labels) per --vary, in order
    options: StyleOptions
    planned: int  # number of combinations (more than len(runs) if interrupted)

    @property
    def stopped(self) -> bool:
        return bool(self.runs) and self.runs[-1].result.stopped

    def to_dict(self) -> dict:
        """The axes, grid, options and every run, JSON-ready (images left out)."""
        return {
            "vary": {k.replace("_", "-"): labels for k, labels in self.axes},
            "grid": {
                "columns": self.layout.columns,
                "rows": self.layout.rows,
                "tile_size": list(self.layout.tile_size),
                "sheet_size": list(self.layout.size),
            },
            "planned": self.planned,
            "stopped": self.stopped,
            "options": self.options.to_dict(),
            "runs": [run.to_dict() for run in self.runs],
        }


def grid_columns(axes: Sequence[Tuple[str, Sequence]], count: int) -> int:
    """Columns of the sheet: the last varied setting's values along a row when two or more settings vary
    (a table); for a single setting, one row of up to 6 tiles, else a near-square grid."""
    if len(axes) >= 2:
        return len(axes[-1][1])
    return count if count <= 6 else math.ceil(math.sqrt(count))


def sweep(
    content: ImageLike,
    style: Union[ImageLike, Sequence[ImageLike]],
    vary: Union[Mapping[str, Sequence[Any]], Sequence[str]],
    options: Optional[StyleOptions] = None,
    columns: Optional[int] = None,
    callback: Optional[Callable[[int, int, str], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    **fixed,
) -> SweepResult:
    """Stylize ``content`` with ``style`` once per combination (cartesian product) of the ``vary`` settings and
    assemble a labelled contact sheet.

    ``vary``: {'style-weight': [1e3, 1e4], 'content-layers': ['relu2_2', 'relu4_2']} or the command-line form
    ['style-weight=1e3,1e4', 'content-layers=relu2_2,relu4_2']. ``options`` / ``fixed``: StyleOptions (or its
    fields as keywords) applied to every run; varied fields override them. ``columns``: tiles per row
    (default: ``grid_columns``). ``callback(index, total, caption)`` is called before each run;
    ``should_stop()`` returning True (checked during each run) ends the sweep after the current run.

    Every combination is validated before the first run, so a bad value fails at once (NeuralensError).
    Returns a SweepResult; stopping early (Ctrl-C, ``should_stop``) returns the sheet of the runs so far."""
    base = dataclasses.replace(options or StyleOptions(), **{field_name(k): v for k, v in fixed.items()})
    axes = normalise_vary(vary)
    combos = list(itertools.product(*[entries for _, entries in axes]))
    planned = []
    for combo in combos:
        values = {key: typed for (key, _), (_, typed) in zip(axes, combo)}
        settings = {key.replace("_", "-"): label for (key, _), (label, _) in zip(axes, combo)}
        run_options = dataclasses.replace(base, **values)
        try:
            run_options.validate()
        except NeuralensError as exc:
            shown = ", ".join(f"{k}={v}" for k, v in settings.items())
            raise NeuralensError(f"{exc} (in the combination {shown})") from None
        planned.append((settings, values, run_options))
    runs: List[SweepRun] = []
    for index, (settings, values, run_options) in enumerate(planned):
        caption = "\n".join(f"{k}={v}" for k, v in settings.items())
        if callback is not None:
            callback(index, len(planned), caption.replace("\n", ", "))
        # One StyleTransfer per combination: the VGG19 weights are cached, so this costs only the style targets.
        result = StyleTransfer(style, run_options).run(content, should_stop=should_stop)
        runs.append(SweepRun(index, settings, values, caption, result))
        if result.stopped:
            break
    if not runs:
        raise NeuralensError("the sweep produced no images")
    cols = columns or grid_columns([(k, e) for k, e in axes], len(planned))
    tile_size = (max(r.image.width for r in runs), max(r.image.height for r in runs))
    captions = [r.caption for r in runs]
    title = "sweep: " + " x ".join(f"{k.replace('_', '-')} ({len(e)})" for k, e in axes)
    sheet = contact_sheet([r.image for r in runs], captions, columns=cols, title=title, tile_size=tile_size)
    layout = sheet_layout(len(runs), tile_size, cols, captions, None, title)
    for run, box in zip(runs, layout.tiles):
        run.box = box
    return SweepResult(sheet, layout, runs, [(k, [label for label, _ in e]) for k, e in axes], base, len(planned))


def save_sweep(result: SweepResult, path: Union[str, Path], content: Any = None, style: Any = None) -> Path:
    """Write the sheet to ``path``, each tile as ``<stem>-NN.png`` beside it, and ``<stem>.json`` with the
    settings, final losses, timings and tile file names of every run. Returns the JSON's path."""
    path = check_output_path(path)
    save_image(result.sheet, path)
    report = {
        "neuralens": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "content": str(content) if content is not None else None,
        "style": [str(s) for s in style] if isinstance(style, (list, tuple)) else (str(style) if style else None),
        "sheet": path.name,
        **result.to_dict(),
    }
    for run, entry in zip(result.runs, report["runs"]):
        tile = path.with_name(f"{path.stem}-{run.index + 1:02d}.png")
        save_image(run.image, tile)
        entry["tile"] = tile.name
    json_path = path.with_suffix(".json")
    json_path.write_text(json.dumps(report, indent=1, default=str))
    return json_path
