"""Applying a trained style model to photos: the options of `neuralens stylize --model` and the loop over
files (the model is loaded once)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Tuple

from .. import devices
from ..errors import NeuralensError
from ..imageio import save_result
from ..options import check, option
from ..style.options import PRESERVE_COLOR
from .model import StyleModel, load_model
from .runtime import ENGINES


@dataclass
class ApplyOptions:
    """How a style model is applied (the defaults of `neuralens stylize --model`)."""

    model: Optional[str] = option(
        None,
        "a trained style model: a built-in name (`neuralens models list`) or a model file; paints in one forward pass",
        metavar="NAME|PATH",
        none_help="none: optimise the pixels against STYLE",
    )
    size: Optional[int] = option(
        512,
        "long side of the output in pixels (none: the photo's own size)",
        kind="int",
        above=0,
        nullable=True,
        metavar="PX",
    )
    strength: float = option(1.0, "blend of the photo (0) and the painting (1)", minimum=0, maximum=1)
    preserve_color: Optional[str] = option(
        None,
        "keep the photo's colours: luminance, or match the result's colours to the photo (histogram)",
        choices=PRESERVE_COLOR,
        none_help="off",
    )
    device: str = option("auto", "where to run", choices=devices.DEVICES)
    precision: str = option(
        "auto",
        "auto: on the CPU narrow networks (every built-in one) in int8 (onnxruntime) where it multiplies bytes "
        "natively, else fp32; wider ones and GPUs in bf16 where native; or bf16 / fp32 always",
        choices=devices.PRECISIONS,
    )
    engine: str = option(
        "auto",
        "what runs the network: onnxruntime (fp32 or int8 on the CPU, faster), torch, or auto (onnxruntime where it "
        "can)",
        choices=ENGINES,
    )

    def validate(self) -> ApplyOptions:
        return check(self)

    def load(self) -> StyleModel:
        """The model, loaded for these options' device and precision."""
        if self.model is None:
            raise NeuralensError("no style model given (a built-in name or a model file)")
        return load_model(self.model, self.device, self.precision, self.engine)


def stylize_files(
    pairs: Iterable[Tuple[Path, Path]], options: ApplyOptions, model: Optional[StyleModel] = None
) -> Iterator[Tuple[Path, Path, float]]:
    """Stylize each (photo, output) pair with one model (loaded once); yields (photo, output, seconds) after
    each is saved (``imageio.save_result``: a failed save never loses the image)."""
    options.validate()
    model = model or options.load()
    for photo, output in pairs:
        started = time.perf_counter()
        image = model.stylize(photo, options.strength, options.preserve_color, options.size)
        save_result(image, output)
        yield photo, output, time.perf_counter() - started
