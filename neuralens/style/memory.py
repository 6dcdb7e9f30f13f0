"""How much memory an optimisation step needs, and how much the device has.

The numbers are measured, not derived: peak RSS of one forward + backward pass of VGG19 up to relu5_1 with the
style objective, divided by the pixel count (see benchmarks/README.md), plus the optimiser's own state.
"""

from __future__ import annotations

import os
from typing import Optional

import torch

# Bytes per output pixel of the network's saved activations and gradients (measured at 512-768 px, rounded up).
NETWORK_BYTES_PER_PIXEL = {"fp32": 3000, "bf16": 2600}
# Fixed cost: the weights, torch and Python (measured about 450 MB; rounded up).
BASE_BYTES = 700 * 2**20
# Bytes per pixel of the whole image kept beside the tiles of a tiled scale: the image, its content target,
# colour reference, blend weights and preview composite (fp32 RGB copies) and the 8-bit output (rounded up;
# with a 1024-px tile this predicts 5.9 GB for 4000x3000, where 5.5 GiB peak was measured).
WHOLE_IMAGE_BYTES_PER_PIXEL = 100
# Keep this share of what is available free for everything else.
SAFETY = 0.85
GB = 2**30


def optimizer_bytes_per_pixel(optimizer: str, history_size: int = 50) -> int:
    """The optimiser's state per pixel: L-BFGS keeps 2 x history vectors, Adam 2 moments (3 fp32 channels each),
    plus the image, its gradient and the best image seen."""
    vectors = 2 * history_size + 4 if optimizer == "lbfgs" else 2 + 4
    return vectors * 3 * 4


def estimate_bytes(width: int, height: int, precision: str = "fp32", optimizer: str = "lbfgs") -> int:
    """Estimated peak memory in bytes for optimising a width x height image."""
    per_pixel = NETWORK_BYTES_PER_PIXEL.get(precision, NETWORK_BYTES_PER_PIXEL["fp32"])
    return BASE_BYTES + width * height * (per_pixel + optimizer_bytes_per_pixel(optimizer))


def available_bytes(device: torch.device) -> int:
    """Memory the run may use on ``device``: free GPU memory for CUDA, available RAM otherwise.

    NEURALENS_MEMORY_LIMIT_GB overrides it (useful to leave room for other programs)."""
    limit = os.environ.get("NEURALENS_MEMORY_LIMIT_GB")
    if limit:
        return int(float(limit) * GB)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * GB  # unknown platform: assume a modest laptop


def fits(width: int, height: int, precision: str, optimizer: str, budget: int) -> bool:
    """True when optimising a width x height image should fit in ``budget`` bytes (with the safety margin)."""
    return estimate_bytes(width, height, precision, optimizer) <= budget * SAFETY


def largest_fitting_long_side(aspect: float, precision: str, optimizer: str, budget: int, upper: int = 100_000) -> int:
    """The largest long side (px) whose image, of ``aspect`` = short/long side, fits in ``budget``; 0 if none."""
    lo, hi = 0, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid, max(1, round(mid * aspect)), precision, optimizer, budget):
            lo = mid
        else:
            hi = mid - 1
    return lo


def describe(nbytes: float) -> str:
    """'3.2 GB' for a byte count."""
    return f"{nbytes / GB:.1f} GB"


def check_fits(
    width: int, height: int, precision: str, optimizer: str, device: torch.device, budget: Optional[int] = None
) -> Optional[str]:
    """None when the image fits; otherwise a one-line explanation naming the largest size that would fit."""
    budget = available_bytes(device) if budget is None else budget
    if fits(width, height, precision, optimizer, budget):
        return None
    need = estimate_bytes(width, height, precision, optimizer)
    aspect = min(width, height) / max(width, height)
    largest = largest_fitting_long_side(aspect, precision, optimizer, budget)
    return (
        f"{width}x{height} px needs about {describe(need)} but {describe(budget * SAFETY)} is usable on "
        f"{device.type}; the largest size that fits is --size {largest}"
    )


def estimate_tiled_bytes(width: int, height: int, tile: int, precision: str = "fp32", optimizer: str = "lbfgs") -> int:
    """Estimated peak memory in bytes for optimising a width x height image in tiles of ``tile`` px."""
    tile_w, tile_h = min(width, tile), min(height, tile)
    return estimate_bytes(tile_w, tile_h, precision, optimizer) + width * height * WHOLE_IMAGE_BYTES_PER_PIXEL


def check_tiled_fits(
    width: int,
    height: int,
    tile: int,
    precision: str,
    optimizer: str,
    device: torch.device,
    budget: Optional[int] = None,
) -> Optional[str]:
    """None when a tiled run fits; otherwise a one-line explanation naming the largest size that would fit."""
    budget = available_bytes(device) if budget is None else budget
    need = estimate_tiled_bytes(width, height, tile, precision, optimizer)
    if need <= budget * SAFETY:
        return None
    aspect = min(width, height) / max(width, height)
    lo, hi = 0, max(width, height)
    while lo < hi:  # the largest long side whose tiled run fits
        mid = (lo + hi + 1) // 2
        if estimate_tiled_bytes(mid, max(1, round(mid * aspect)), tile, precision, optimizer) <= budget * SAFETY:
            lo = mid
        else:
            hi = mid - 1
    return (
        f"{width}x{height} px needs about {describe(need)} even in {tile}-px tiles but "
        f"{describe(budget * SAFETY)} is usable on {device.type}; the largest size that fits is --size {lo}"
    )
