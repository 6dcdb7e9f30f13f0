"""The fastest memory layout for VGG19's optimisation on this CPU, measured once and remembered.

Why measure: which layout is faster depends on the CPU, and the old fixed rule (channels-last for bf16 only)
was wrong for fp32 on both CPUs measured. One forward + backward evaluation of the style objective at
512x384, 2 threads: on Intel with AMX-bf16, fp32 NCHW 3.0 s, fp32 channels-last 1.8 s, bf16 channels-last
0.75 s (benchmarks/README.md, section 1); on an AMD EPYC with AVX2 only, fp32 NCHW 2.07 s, channels-last 1.88 s
(interleaved runs; bf16 there is emulated and takes minutes, so ``devices.pick_precision`` never picks it).
So a run with ``channels_last`` left unset on the CPU times a few evaluations of each layout on a small image
(about 8 s on the slowest CPU seen, more when it is busy) and keeps the answer in the cache folder, keyed
by what decides it: the CPU's model name and vector/matrix units, torch's version and thread count, the
precision and the network's layers.
A cache written on another machine (a copied home folder, a CI image) has another key and is measured
again; an unreadable or foreign file is ignored and rewritten. ``NEURALENS_AUTOTUNE=0`` turns measuring off
(the fixed rule then decides: channels-last for bf16, NCHW for fp32).

On CUDA channels-last is always faster for these convolutions and on Apple's MPS it is unsupported, so
neither is measured.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import torch

from . import devices
from .cache import cache_folder

AUTOTUNE_ENV = "NEURALENS_AUTOTUNE"
CACHE_NAME = "autotune.json"
FORMAT = "neuralens-autotune"
# The measured image: 384x288, about 1 s an evaluation on the slowest CPU seen (AVX2 only). Smaller images
# understate the layout's gain there: channels-last was 1.08x faster at 256x192, 1.4x at 512x384 and 2048x1536
# (benchmarks/results/style_speed_amd_avx2.md).
MEASURE_SHAPE = (288, 384)
MARGIN = 0.03  # the other layout must be 3 % faster than the rule's (measured gains here: 7-30 %)
MEASURE_REPEATS = 2  # timed evaluations per layout, alternating, after one warm-up each; the best counts
# CPU flags that change which kernels oneDNN picks.
_UNITS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "fma", "asimd", "sve")

# A measurement: (precision, channels_last) -> seconds of one evaluation (the first call per layout warms up).
Measure = Callable[[str, bool], float]


def enabled() -> bool:
    """False when $NEURALENS_AUTOTUNE is 0/off/no/false."""
    return os.environ.get(AUTOTUNE_ENV, "1").strip().lower() not in ("0", "off", "no", "false")


def cpu_signature() -> Dict[str, object]:
    """What decides the fastest kernels here: CPU model name, its vector/matrix units, machine, torch version
    and intra-op threads."""
    fields: Dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())  # the first CPU's lines; the others repeat them
    except OSError:
        pass
    name = fields.get("model name") or fields.get("Model") or platform.processor()
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return {
        "cpu": name,
        "units": sorted(flags.intersection(_UNITS)),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def cache_key(precision: str, workload: str) -> str:
    """The key of a choice: a digest of the CPU signature, ``precision``, ``workload`` (the network) and how
    it is measured. A choice measured another way is measured again: an entry of the earlier 256x192 measure
    (taken on a busy machine: channels-last 7.6 s, NCHW 3.7 s) kept NCHW for every later run, where
    channels-last is 1.2-1.5x faster from 512 px on (benchmarks/results/style_speed_amd_avx2.md)."""
    measured = {"shape": list(MEASURE_SHAPE), "repeats": MEASURE_REPEATS}
    fields = {**cpu_signature(), "precision": precision, "workload": workload, "measure": measured}
    text = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cache_path() -> Path:
    return cache_folder() / CACHE_NAME


def _read_cache(path: Path) -> Dict[str, dict]:
    """The entries of the cache file; {} when it is missing, unreadable or not ours."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entries"), dict):
        return {}
    return {
        k: v for k, v in data["entries"].items() if isinstance(v, dict) and isinstance(v.get("channels_last"), bool)
    }


def _write_cache(path: Path, entries: Dict[str, dict]) -> None:
    """Write the cache atomically (two runs measuring at once each leave a whole file); never fails a run."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".autotune-", suffix=".json")
        with os.fdopen(handle, "w") as out:
            json.dump({"format": FORMAT, "entries": entries}, out, indent=1, sort_keys=True)
        os.replace(temporary, path)
    except OSError:
        pass


def vgg_measure(
    content_layers: Sequence[str], style_layers: Sequence[str], pooling: str = "max", weights: Optional[str] = None
) -> Measure:
    """A Measure timing one evaluation of the style objective on a MEASURE_SHAPE image on the CPU: VGG19 up to
    the deepest layer, the content loss at ``content_layers`` and the fused style loss at ``style_layers``
    (zero targets: the values do not change the time), forward and backward."""
    from .backbone import layer_index, load_vgg19  # noqa: PLC0415
    from .style.losses import content_loss, feature_style_loss  # noqa: PLC0415

    deepest = max([*content_layers, *style_layers], key=layer_index)
    model = load_vgg19(deepest, pooling, weights, "cpu")
    layers = sorted(set(content_layers) | set(style_layers), key=layer_index)

    def evaluate(channels_last: bool, precision: str, image: torch.Tensor) -> None:
        layout = torch.channels_last if channels_last else torch.contiguous_format
        net = model.to(memory_format=layout)
        with devices.autocast(torch.device("cpu"), precision):
            feats = net(image.contiguous(memory_format=layout), layers)
        loss = sum(content_loss(feats[n], torch.zeros(())) for n in content_layers)
        for name in style_layers:
            f = feats[name]
            loss = loss + feature_style_loss(f, torch.zeros(1, f.shape[1], f.shape[1]))
        image.grad = None
        loss.backward()

    image = torch.rand(1, 3, *MEASURE_SHAPE, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    warm = set()

    def measure(precision: str, channels_last: bool) -> float:
        if (precision, channels_last) not in warm:  # oneDNN picks and caches its kernels on the first call
            evaluate(channels_last, precision, image)
            warm.add((precision, channels_last))
        started = time.perf_counter()
        evaluate(channels_last, precision, image)
        return time.perf_counter() - started

    return measure


def channels_last_for(
    device: torch.device,
    precision: str,
    workload: str,
    measure: Optional[Callable[[], Measure]] = None,
    say: Optional[Callable[[str], None]] = None,
) -> bool:
    """Whether to run ``workload`` (a name for the network, e.g. 'vgg19-relu5_1-max') channels-last on
    ``device`` in ``precision``: always on CUDA, never on MPS; on the CPU the faster layout as measured by
    ``measure()`` (made only when needed) and cached, or the fixed rule when measuring is off. ``say`` gets a
    one-line note when a measurement is about to run."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    rule = precision == "bf16"
    if not enabled() or measure is None:
        return rule
    key, path = cache_key(precision, workload), cache_path()
    entries = _read_cache(path)
    if key in entries:
        return entries[key]["channels_last"]
    if say is not None:
        say(f"measuring this CPU's faster memory layout for {workload} ({precision}) once; cached in {path}")
    timer = measure()
    seconds = {False: float("inf"), True: float("inf")}
    for _ in range(MEASURE_REPEATS):  # alternating, so that a busy moment does not fall on one layout only
        for layout in (False, True):
            seconds[layout] = min(seconds[layout], timer(precision, layout))
    # A layout wins only by a clear margin: on a close call the rule decides, so that two processes (two
    # workers of a queue) measuring apart on one kind of CPU choose alike and paint the same pixels.
    faster = not rule
    choice = faster if seconds[faster] < (1 - MARGIN) * seconds[rule] else rule
    entries = _read_cache(path)  # another run may have written meanwhile
    entries[key] = {
        "channels_last": choice,
        "seconds": {"nchw": round(seconds[False], 4), "channels_last": round(seconds[True], 4)},
        "shape": list(MEASURE_SHAPE),
        "precision": precision,
        "workload": workload,
        "signature": cpu_signature(),
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _write_cache(path, entries)
    return choice


def stderr_note(message: str) -> None:
    """Print ``message`` on stderr (the default ``say`` of a run that shows progress)."""
    print(f"neuralens: {message}", file=sys.stderr, flush=True)
