"""Gatys et al. 2015, Figure 1, for the user's own image: what each layer keeps of it.

Top row: content reconstructions, each from one layer's feature maps (relu1_2 ... relu5_2): the deeper the
layer, the more the exact pixels are lost while the arrangement of objects stays. Bottom row: style
reconstructions from the Gram matrices of growing sets of layers (relu1_1; relu1_1 + relu2_1; ...): textures
of ever larger scale, with the arrangement gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

from PIL import Image

from ..errors import NeuralensError
from ..imageio import ImageLike, load_image, resize_long_side
from ..style import RECONSTRUCT_DEFAULTS, StyleResult, reconstruct_run
from .sheets import contact_sheet

CONTENT_LAYERS = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def growing_sets(layers: Sequence[str] = STYLE_LAYERS) -> List[List[str]]:
    """[[l1], [l1, l2], ..., [l1, ..., ln]]: the style layer sets of Figure 1."""
    return [list(layers[: i + 1]) for i in range(len(layers))]


@dataclass
class Reconstruction:
    """One tile of the sheet: what it was reconstructed from, its caption and the run's result."""

    kind: str  # "content" or "style"
    layers: List[str]
    caption: str
    result: StyleResult = field(repr=False)

    @property
    def image(self) -> Image.Image:
        return self.result.image

    def to_dict(self) -> dict:
        return {"kind": self.kind, "layers": list(self.layers), "caption": self.caption, **self.result.to_dict()}


@dataclass
class ReconstructionSheet:
    """The assembled sheet, the original (resized) image and every reconstruction (content first)."""

    sheet: Image.Image
    original: Image.Image
    reconstructions: List[Reconstruction]

    def to_dict(self) -> dict:
        return {
            "sheet_size": list(self.sheet.size),
            "original_size": list(self.original.size),
            "reconstructions": [r.to_dict() for r in self.reconstructions],
        }


def _style_caption(layers: Sequence[str]) -> str:
    return "style " + (layers[0] if len(layers) == 1 else f"{layers[0]}..{layers[-1]}\n({len(layers)} layers)")


def reconstruction_sheet(
    image: ImageLike,
    content_layers: Sequence[str] = CONTENT_LAYERS,
    style_layer_sets: Optional[Sequence[Sequence[str]]] = None,
    size: int = 256,
    iterations: int = RECONSTRUCT_DEFAULTS["iterations"],
    progress: Optional[Callable[[int, int, str], None]] = None,
    **options,
) -> ReconstructionSheet:
    """Reconstruct ``image`` from each of ``content_layers`` and from each set in ``style_layer_sets`` (default:
    the growing sets relu1_1, relu1_1+relu2_1, ..., up to relu5_1) and lay them out, labelled.

    Each reconstruction starts from white noise and runs ``iterations`` optimiser steps at ``size`` px
    (``neuralens.style.reconstruct_run``); ``options`` are further StyleOptions fields (device, seed,
    optimizer, ...). ``progress(done, total, caption)`` is called before each run. Returns a
    ReconstructionSheet: the sheet (row 1: the original then the content reconstructions; row 2: the
    style reconstructions under them), the original and the list of reconstructions."""
    sets = [list(s) for s in (style_layer_sets if style_layer_sets is not None else growing_sets())]
    if not content_layers and not sets:
        raise NeuralensError("nothing to reconstruct: no content layers and no style layer sets")
    if any(not s for s in sets):
        raise NeuralensError("a style layer set is empty")
    original = resize_long_side(load_image(image), size)
    jobs = [("content", [layer], f"content {layer}") for layer in content_layers]
    jobs += [("style", s, _style_caption(s)) for s in sets]
    done: List[Reconstruction] = []
    for n, (kind, layers, caption) in enumerate(jobs):
        if progress is not None:
            progress(n, len(jobs), caption.replace("\n", " "))
        if kind == "content":
            result = reconstruct_run(original, content_layer=layers[0], size=size, iterations=iterations, **options)
        else:
            result = reconstruct_run(
                original, style_layers=",".join(layers), size=size, iterations=iterations, **options
            )
        done.append(Reconstruction(kind, layers, caption, result))
        if result.stopped:  # Ctrl-C: lay out what is there
            break
    contents = [r for r in done if r.kind == "content"]
    styles = [r for r in done if r.kind == "style"]
    columns = 1 + max(len(content_layers), len(sets))
    # Row 1: original + content; row 2: an empty slot under the original + style. Empty slots stay blank.
    tiles: List[Optional[Image.Image]] = [original] + [r.image for r in contents]
    captions = ["original"] + [r.caption for r in contents]
    tiles += [None] * (columns - len(tiles))
    captions += [""] * (columns - len(captions))
    if sets:
        tiles += [None] + [r.image for r in styles] + [None] * (columns - 1 - len(styles))
        captions += [""] + [r.caption for r in styles] + [""] * (columns - 1 - len(styles))
    sheet = contact_sheet(
        tiles,
        captions,
        columns=columns,
        tile_size=original.size,
        title="What VGG19 keeps: content reconstructions (top), style reconstructions (bottom)",
    )
    return ReconstructionSheet(sheet, original, done)
