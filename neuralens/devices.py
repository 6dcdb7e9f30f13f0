"""Device and precision choice, shared by every capability."""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

import torch

from .errors import NeuralensError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")


def pick_device(name: str = "auto") -> torch.device:
    """Return the torch device for ``name`` ('auto' prefers CUDA, then Apple's MPS, then the CPU).

    Raises NeuralensError when a device is asked for by name but is not available."""
    if name not in DEVICES:
        raise NeuralensError(f"unknown device '{name}' (choose from {', '.join(DEVICES)})")
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise NeuralensError("--device cuda asked for, but no CUDA GPU is available")
    if name == "mps" and not mps:
        raise NeuralensError("--device mps asked for, but Apple's MPS is not available")
    return torch.device(name)


@functools.cache
def cpu_flags() -> frozenset:
    """The CPU's feature flags as /proc/cpuinfo lists them (empty where there is no such file)."""
    try:
        return frozenset(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return frozenset()


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 matrix units (Intel AMX-BF16 or AVX512-BF16), where bf16
    autocast is several times faster than fp32. Elsewhere bf16 on the CPU is emulated and slower."""
    return bool(cpu_flags() & {"amx_bf16", "avx512_bf16"})


def cpu_has_amx_bf16() -> bool:
    """True when the CPU has Intel's AMX tiles for bf16: there PyTorch's bf16 convolutions of wide networks
    beat onnxruntime's int8 ones (measured, ``fast/arbitrary.py``)."""
    return "amx_bf16" in cpu_flags()


def cpu_has_fast_int8() -> bool:
    """True when the CPU multiplies 8-bit integers in dot products natively (x86 VNNI or AMX-INT8, Arm's dot
    product instructions), where an int8 network runs several times faster than fp32 (``fast/quantized.py``)."""
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"})


def pick_precision(name: str, device: torch.device) -> str:
    """Resolve 'auto' to 'bf16' where the device runs it natively and fast, else 'fp32'."""
    if name not in PRECISIONS:
        raise NeuralensError(f"unknown precision '{name}' (choose from {', '.join(PRECISIONS)})")
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    return "fp32"


def autocast(device: torch.device, precision: str):
    """A context manager that runs the network in ``precision`` on ``device`` (a no-op for fp32)."""
    if precision == "bf16" and device.type in ("cpu", "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def configure_threads() -> None:
    """Use every core for intra-op work unless the user set OMP_NUM_THREADS or torch's count already."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
