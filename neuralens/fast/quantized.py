"""Networks in 8-bit integers on the CPU (onnxruntime), made once per machine: the arbitrary-style encoder and
decoder (``quantize``) and the per-style models (``fast.model.StyleModel``, the same ``quantized_file``).

Why: VGG19 up to relu4_1 is most of a ``--fast`` pass, and a CPU with 8-bit dot-product instructions runs it in
int8 far faster than in bf16 - unless it has Intel's AMX tiles, where PyTorch's bf16 wins (``arbitrary.pick_precision``). On the 2-core AMD EPYC with AVX512-BF16 and AVX512-VNNI, a 512x340 photo: the
encoder 250 ms in torch bf16, 360 ms in onnxruntime fp32, 100 ms in onnxruntime int8; the decoder (width 32) 71
-> 45 ms. The pictures stay: 33-35 dB PSNR against the bf16 result on 4 held-out photos x a held-out painting,
none told apart by eye at 2x (benchmarks/README.md section 8, results/fast_arbitrary_amd_avx512bf16_int8.md).

How: each network is exported to ONNX in fp32, then onnxruntime's static quantizer writes the 8-bit graph
(QDQ; weights int8 per output channel, activations uint8 with the ranges (min/max) they take on the bundled
sample photos and paintings; the decoder's on each sample's features given each sample's style; padding and
upsampling kept on the 8-bit values, ``copy_in_int8``) into the cache folder, named by a digest of the weights
and of the versions. That takes about 10 s the first time on 2 cores for the AdaIN pair, 2 s for a style model;
later runs load the file at once. On x86 CPUs without VNNI the weights keep 7 bits (the quantizer's
``reduce_range``), as onnxruntime advises there against overflowing its 16-bit intermediate sums.

    encoder, decoder = quantize(model.encoder, model.decoder)   # Int8Network each: tensor -> tensor

A per-style model (ShuffleNet width 24) runs 2x faster the same way: starry-night at 512x512 36 ms against 74 ms in
fp32 on that machine, 33-38 dB PSNR against fp32 for the four built-in models (benchmarks/README.md section 6).
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image
from torch import nn

from .. import __version__, devices
from ..autotune import stderr_note
from ..cache import cache_folder
from ..errors import NeuralensError
from ..imageio import SAMPLES, image_to_tensor, load_image
from .adain import adain, mean_std
from .runtime import INSTALL_HINT, SessionRunner, onnxruntime_available, state_digest

RECIPE = 2  # how the files are made, in their names: raised when that changes, so that older files are not used
CALIBRATION_SIZE = (512, 384)  # (W, H): the quantizer stacks its inputs, so the samples share one shape
X86 = ("x86_64", "amd64", "i386", "i686")


def note_on_terminal(message: str) -> None:
    """Say ``message`` (the once-per-machine wait) on stderr when it is a terminal: a pipe or a log (a worker's, a
    test's) keeps its lines."""
    if sys.stderr.isatty():
        stderr_note(message)


def usable(device: torch.device) -> Optional[str]:
    """Why the int8 networks cannot run on ``device`` here (None when they can)."""
    if device.type != "cpu":
        return "int8 runs on the CPU only"
    if not onnxruntime_available():
        return f"int8 needs the onnx and onnxruntime packages: {INSTALL_HINT}"
    return None


def fast_here(device: torch.device) -> bool:
    """Whether 'auto' may pick int8 on ``device``: a CPU that multiplies 8-bit integers natively, with onnxruntime
    installed (the callers decide for their networks beyond that: ``arbitrary.pick_precision``, ``StyleModel``)."""
    return devices.cpu_has_fast_int8() and usable(device) is None


def reduce_range() -> bool:
    """Whether weights keep 7 bits: on x86 without 8-bit dot-product units (see the module's note)."""
    return platform.machine().lower() in X86 and not devices.cpu_has_fast_int8()


def calibration_images() -> List[torch.Tensor]:
    """The bundled samples (two photos, two paintings) as (1, 3, H, W) tensors of CALIBRATION_SIZE."""
    paths = sorted(SAMPLES.glob("*.jpg"))
    return [image_to_tensor(load_image(p).resize(CALIBRATION_SIZE, Image.BICUBIC)) for p in paths]


@torch.inference_mode()
def decoder_inputs(encoder: nn.Module, images: List[torch.Tensor]) -> List[torch.Tensor]:
    """What the decoder sees in use: each image's relu4_1 features given each image's statistics (AdaIN)."""
    features = [encoder(image).float() for image in images]
    stats = [mean_std(f) for f in features]
    return [adain(f, mean, std) for f in features for mean, std in stats]


class Int8Network(SessionRunner):
    """A network quantized to int8 (a ``quantized_file``), run by onnxruntime on the CPU: (N, C, H, W) float tensor
    -> float tensor. ``input_name``: the graph's input."""

    def __init__(self, path: Path, input_name: str = "input"):
        super().__init__(path, input_name)


def torch_export(module: nn.Module) -> Callable[[Path, torch.Tensor], None]:
    """Writes ``module`` as fp32 ONNX (input 'input', output 'output', any height and width) given an example."""

    def export(path: Path, example: torch.Tensor) -> None:
        axes = {2: "height", 3: "width"}
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": axes, "output": axes},
            do_constant_folding=True,
        )

    return export


def copies_values(node) -> bool:
    """Whether an onnx node only copies values of its first input: reflection or edge padding (not constant
    padding: its 0 is not the quantized 0), nearest-neighbour resizing, max pooling (it picks one)."""
    from onnx import helper  # noqa: PLC0415

    mode = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "mode"), None)
    if node.op_type == "Pad":
        return mode in (b"reflect", b"edge")
    if node.op_type == "Resize":
        return mode in (None, b"nearest")
    return node.op_type == "MaxPool"


def copy_in_int8(model) -> int:
    """Run the nodes of the onnx ``model`` that only copy values (``copies_values``) on its 8-bit values: a
    DequantizeLinear before such a node and a QuantizeLinear after it with the same scale and zero point give the
    very bytes the node gives on the bytes, and onnxruntime's CPU otherwise converts to float and back around each
    one. Measured on the decoder at 512x512: 98-110 -> 74-75 ms, outputs identical (the encoder's pools already ran
    in int8). Returns the nodes removed."""
    producer = {name: node for node in model.graph.node for name in node.output}
    consumers: dict = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    removed = set()
    for node in model.graph.node:
        before, after = producer.get(node.input[0]) if node.input else None, consumers.get(node.output[0], [])
        if not copies_values(node) or before is None or before.op_type != "DequantizeLinear":
            continue
        if len(after) != 1 or after[0].op_type != "QuantizeLinear" or after[0].input[1:] != before.input[1:]:
            continue
        node.input[0], node.output[0] = before.input[0], after[0].output[0]
        removed.add(id(after[0]))
        if len(consumers[before.output[0]]) == 1:
            removed.add(id(before))
    kept = [node for node in model.graph.node if id(node) not in removed]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return len(removed)


def _write(
    export: Callable[[Path, torch.Tensor], None], input_name: str, inputs: List[torch.Tensor], output: Path
) -> None:
    """Write the fp32 ONNX graph with ``export`` and quantize it, calibrated on ``inputs`` (fed as ``input_name``),
    into ``output``."""
    import onnx  # noqa: PLC0415
    from onnxruntime.quantization import (  # noqa: PLC0415 -- only when a file is made
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: PLC0415

    from .export import quiet_exporter  # noqa: PLC0415

    class Reader(CalibrationDataReader):
        """The calibration inputs, one at a time, as the quantizer asks for them."""

        def __init__(self) -> None:
            self.items = iter(inputs)

        def get_next(self) -> Optional[dict]:
            item = next(self.items, None)
            return None if item is None else {input_name: np.ascontiguousarray(item.float().numpy())}

    # The shape inference and the quantizer log their doubts (a shape they cannot prove, a per-channel axis that a
    # 1-d weight lacks: it is quantized per tensor then) as warnings on the root logger; the user needs none.
    logging.disable(logging.WARNING)
    try:
        with tempfile.TemporaryDirectory(prefix="neuralens-int8-") as folder, quiet_exporter(), torch.no_grad():
            plain, prepared, qdq = (Path(folder) / name for name in ("fp32.onnx", "prepared.onnx", "qdq.onnx"))
            export(plain, inputs[0])
            quant_pre_process(str(plain), str(prepared))
            quantize_static(
                str(prepared),
                str(qdq),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=reduce_range(),
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
            model = onnx.load(str(qdq))
            copy_in_int8(model)
            onnx.save(model, str(output))
    finally:
        logging.disable(logging.NOTSET)


def quantized_file(
    module: nn.Module,
    kind: str,
    inputs: Callable[[], List[torch.Tensor]],
    say: Optional[Callable[[str], None]] = None,
    export: Optional[Callable[[Path, torch.Tensor], None]] = None,
    input_name: str = "input",
) -> Path:
    """The int8 ONNX file of ``module`` (fp32, on the CPU; ``kind`` names it, in the file name too): from the
    cache, or made into it from the calibration ``inputs()`` (into a temporary folder for this process when the
    cache cannot be written). ``export(path, example)`` writes the fp32 graph, whose input is ``input_name``
    (default: ``torch_export(module)``). ``say`` gets a one-line note before a file is made."""
    import onnxruntime  # noqa: PLC0415

    versions = f"{kind}/{RECIPE}/{torch.__version__}/{onnxruntime.__version__}/{__version__}/{reduce_range()}"
    name = f"{kind}-int8-{state_digest(versions, module.state_dict())}.onnx"
    path = cache_folder() / "onnx" / name
    if path.is_file():
        return path
    if say is not None:
        say(f"making the 8-bit {kind} network for this machine once (seconds); cached in {path.parent}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{name}-", suffix=".onnx")
        os.close(handle)
    except OSError:  # a read-only home, a full disk: made for this process only
        path = Path(tempfile.mkdtemp(prefix="neuralens-int8-")) / name
        partial = str(path)
    try:
        _write(export or torch_export(module), input_name, inputs(), Path(partial))
        os.replace(partial, path)  # whole or not at all: two processes making it at once each leave a whole file
    except Exception as exc:  # the exporter and the quantizer raise many kinds; the first line says what happened
        Path(partial).unlink(missing_ok=True)
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise NeuralensError(f"could not make the 8-bit {kind}: {detail} (use --precision fp32)") from None
    return path


def quantize(
    encoder: nn.Module, decoder: nn.Module, say: Optional[Callable[[str], None]] = None
) -> Tuple[Int8Network, Int8Network]:
    """The AdaIN ``encoder`` and ``decoder`` as Int8Networks (files made once, see ``quantized_file``)."""
    encoder_file = quantized_file(encoder, "adain-encoder", calibration_images, say)
    decoder_file = quantized_file(decoder, "adain-decoder", lambda: decoder_inputs(encoder, calibration_images()), say)
    return Int8Network(encoder_file), Int8Network(decoder_file)
