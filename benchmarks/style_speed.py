"""Part 1: seconds per loss evaluation and peak memory, per image size and precision/layout.

One evaluation = what every optimiser step of neuralens costs: the real style objective (VGG19 cut after
relu5_1, frozen; content relu4_2 + Gram losses relu1_1..relu5_1) forward, then backward to the input
pixels only. Each (size, precision, layout, allocator) runs in a fresh child process (``--child``), so the
peak RSS it reports is that configuration's alone; ``--allocators system jemalloc`` measures glibc's malloc
beside jemalloc (``neuralens.allocator``), ``--only 'bf16 channels_last'`` keeps one configuration. Also per
size: seconds per megapixel and its ratio to 512 px (does the cost per pixel grow with the image?), a
1024x1024 crop as a tiled scale optimises it (``--tile``), and where the time goes (``--breakdown``: torch's
profiler, convolution forward/backward per VGG block - block 1 at full resolution ... block 5 at 1/16 - the
Gram products and the rest). bf16 is measured only where the CPU has bf16 units: emulated, one evaluation at
384 px did not finish in 5 minutes on an AVX2-only AMD EPYC.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .style_common import (
    RESULTS,
    image_path,
    machine_info,
    machine_markdown,
    markdown_table,
    own_max_rss_mib,
    python,
    report_name,
    run_measured,
    safe_memory_limit,
    write_report,
)

CONFIGS = (("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True))
FULL_SIZES = (256, 512, 1024)
QUICK_SIZES = (128, 256)
MARKER = "SPEED-RESULT "


def config_name(precision: str, channels_last: bool, allocator: str = "system") -> str:
    """E.g. 'bf16 channels_last', 'fp32 NCHW + jemalloc'."""
    name = f"{precision} {'channels_last' if channels_last else 'NCHW'}"
    return name if allocator == "system" else f"{name} + {allocator}"


def child_environment(allocator_name: str) -> Dict[str, str]:
    """The environment of a child measured under ``allocator_name`` ('system', 'jemalloc' or 'mimalloc')."""
    import os

    from neuralens import allocator

    env = {k: v for k, v in os.environ.items() if k != allocator.RESTORE}
    if allocator_name == "system":
        return env
    library = allocator.find_jemalloc() if allocator_name == "jemalloc" else allocator.find_mimalloc()
    if library is None:
        raise SystemExit(f"error: --allocators {allocator_name}: not found here (libjemalloc2, cmeel-mimalloc)")
    return allocator.preload_environment(env, allocator_name, library)


def measure_in_this_process(
    size: int,
    precision: str,
    channels_last: bool,
    repeats: int,
    warmup: int,
    content: str,
    style: str,
    tile: Optional[int] = None,
    breakdown: bool = False,
) -> Dict[str, Any]:
    """Time ``repeats`` evaluations (after ``warmup`` untimed ones) of the style objective at ``size``; with
    ``tile``, of a tile x tile crop from the middle of the image at ``size`` (style targets of the whole), as a
    tiled scale evaluates it. ``breakdown`` adds one profiled evaluation's split by VGG block."""
    import torch

    from neuralens import allocator
    from neuralens.imageio import image_to_tensor, load_image, resize_long_side
    from neuralens.style import StyleTransfer

    rss_start = own_max_rss_mib()
    t0 = time.perf_counter()
    st = StyleTransfer(style, size=size, precision=precision, channels_last=channels_last)
    load_s = time.perf_counter() - t0
    rss_model = own_max_rss_mib()
    target = image_to_tensor(resize_long_side(load_image(content), size))
    whole = target
    if tile:
        h, w = target.shape[2:]
        y0, x0 = max(0, (h - tile) // 2), max(0, (w - tile) // 2)
        target = target[:, :, y0 : y0 + tile, x0 : x0 + tile].contiguous()
    t0 = time.perf_counter()
    box = (y0, y0 + target.shape[2], x0, x0 + target.shape[3]) if tile else None
    # content targets and style Grams, once, without gradients
    objective = st.objective(target, reference=whole if tile else None, box=box, whole=tuple(whole.shape[2:]))
    targets_s = time.perf_counter() - t0
    image = target.clone().requires_grad_(True)

    def evaluate() -> float:
        image.grad = None
        losses = objective(image)
        losses["total"].backward()
        return float(losses["total"].detach())

    for _ in range(warmup):
        evaluate()
    times: List[float] = []
    loss = float("nan")
    for _ in range(repeats):
        t = time.perf_counter()
        loss = evaluate()
        times.append(time.perf_counter() - t)
    split = _breakdown(evaluate, int(target.shape[2])) if breakdown else None
    return {
        "size": size,
        "tile": tile,
        "breakdown": split,
        "width": int(target.shape[3]),
        "height": int(target.shape[2]),
        "precision": precision,
        "channels_last": channels_last,
        "threads": torch.get_num_threads(),
        "allocator": allocator.active(),
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "times_s": times,
        "load_model_s": load_s,
        "targets_s": targets_s,
        "loss_at_content": loss,
        "rss_start_mib": rss_start,
        "rss_after_model_mib": rss_model,
        "peak_rss_mib": own_max_rss_mib(),
    }


def _breakdown(evaluate, height: int) -> Dict[str, float]:
    """Seconds of one profiled evaluation by where they go: conv forward/backward per VGG block (told apart by
    the input's height: full, 1/2 ... 1/16 of the image), the Gram products (bmm), everything else."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        evaluate()
    split: Dict[str, float] = {}
    for event in prof.key_averages(group_by_input_shape=True):
        seconds = event.self_cpu_time_total / 1e6
        shape = event.input_shapes[0] if event.input_shapes else []
        if "conv" in event.key and len(shape) == 4 and shape[2]:
            block = {1: 1, 2: 2, 4: 3, 8: 4, 16: 5}.get(round(height / shape[2]), 0)
            key = f"block{block} conv {'backward' if 'backward' in event.key else 'forward'}"
        elif event.key == "aten::bmm":
            key = "Gram products (bmm)"
        else:
            key = "other (relu, pooling, losses, copies)"
        split[key] = split.get(key, 0.0) + seconds
    total = sum(split.values())
    return {k: round(v / total, 4) for k, v in sorted(split.items())}  # shares: the profiler slows every op


def run(
    quick: bool = False,
    sizes: Optional[Sequence[int]] = None,
    repeats: Optional[int] = None,
    warmup: int = 1,
    out_dir=RESULTS,
    memory_limit_gib: Optional[float] = 20.0,
    tile: Optional[int] = None,
    breakdown: Sequence[int] = (),
    name: Optional[str] = None,
    allocators: Optional[Sequence[str]] = None,
    only: Sequence[str] = (),
) -> Dict[str, Any]:
    """Measure every (size, configuration, allocator) in its own child process (and a ``tile`` crop at the largest
    size); write style_speed(.md/.json), or ``name``(.md/.json). ``allocators``: 'system', 'jemalloc' and/or
    'mimalloc' (default: the one the `neuralens` command uses here); ``only``: configuration names to keep, e.g.
    'bf16 channels_last'."""
    from neuralens import allocator as allocator_module

    sizes = list(sizes or (QUICK_SIZES if quick else FULL_SIZES))
    repeats = repeats or (2 if quick else 5)
    content, style = image_path("content", "tubingen"), image_path("style", "starry_night")
    info = machine_info()
    configs = [c for c in CONFIGS if (c[0] != "bf16" or info["cpu_bf16"]) and (not only or config_name(*c) in only)]
    chosen = allocator_module.library_to_preload()
    command_allocator = chosen[0] if chosen else "system"
    allocators = list(allocators or [command_allocator])
    results: List[Dict[str, Any]] = []
    cases = [(size, None) for size in sizes] + ([(max(sizes), tile)] if tile else [])
    for size, crop in cases:
        for (precision, channels_last), allocator_name in [(c, a) for c in configs for a in allocators]:
            name_ = config_name(precision, channels_last, allocator_name)
            print(f"[speed] {size} px{f' tile {crop}' if crop else ''} {name_} ...", file=sys.stderr, flush=True)
            args = json.dumps(
                {
                    "size": size,
                    "precision": precision,
                    "channels_last": channels_last,
                    "repeats": repeats,
                    "warmup": warmup,
                    "content": str(content),
                    "style": str(style),
                    "tile": crop,
                    "breakdown": size in breakdown and not crop,
                }
            )
            m = run_measured(
                [python(), "-m", "benchmarks.style_speed", "--child", args],
                timeout_s=1800,
                memory_limit_gib=safe_memory_limit(memory_limit_gib),
                env=child_environment(allocator_name),
            )
            row: Dict[str, Any] = {
                "size": size,
                "config": name_,
                "precision": precision,
                "channels_last": channels_last,
                "allocator_asked": allocator_name,
                "child": m.as_dict(),
            }
            lines = [line for line in m.stdout.splitlines() if line.startswith(MARKER)]
            if m.returncode == 0 and lines:
                row.update(json.loads(lines[-1][len(MARKER) :]))
                row["child_max_rss_mib"] = m.max_rss_mib
            else:
                row["error"] = m.tail(5) or f"exit status {m.returncode}"
            results.append(row)
    _add_relative(results)
    from neuralens import autotune, devices
    from neuralens.style import StyleOptions

    auto = devices.pick_precision("auto", devices.pick_device("auto"))
    data = {
        "part": "style_speed",
        "machine": info,
        "content": str(content),
        "style": str(style),
        "auto_precision": auto,
        "auto_device": str(devices.pick_device("auto")),
        "default_channels_last": getattr(StyleOptions(), "channels_last", None),
        "autotune": _autotune_choice(autotune, devices, auto),
        "bf16_skipped": not info["cpu_bf16"],
        "repeats": repeats,
        "warmup": warmup,
        "command_allocator": command_allocator,
        "results": results,
        "end_load_average": _load(),
    }
    paths = write_report(
        out_dir,
        name or report_name("style_speed", quick),
        "Style transfer: seconds per evaluation and peak memory",
        _markdown(data),
        data,
        quick,
    )
    print(f"[speed] wrote {paths['markdown']}", file=sys.stderr)
    return data


def _autotune_choice(autotune, devices, precision: str) -> Dict[str, Any]:
    """What neuralens.autotune measures on this machine for the default style network (in a fresh cache)."""
    import os
    import tempfile

    saved = {name: os.environ.get(name) for name in ("NEURALENS_CACHE", autotune.AUTOTUNE_ENV)}
    with tempfile.TemporaryDirectory() as folder:
        os.environ.update({"NEURALENS_CACHE": folder, autotune.AUTOTUNE_ENV: "1"})
        try:
            layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
            choice = autotune.channels_last_for(
                devices.pick_device("cpu"), precision, "bench", lambda: autotune.vgg_measure(["relu4_2"], layers)
            )
            entry = next(iter(json.loads((autotune.cache_path()).read_text())["entries"].values()))
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    return {"channels_last": choice, "seconds": entry["seconds"], "shape": entry["shape"]}


def _load() -> List[float]:
    import os

    return [round(x, 2) for x in os.getloadavg()]


def _add_relative(results: List[Dict[str, Any]]) -> None:
    """Speed-up over, and loss difference from, fp32 NCHW at the same size and crop (the reference path); the
    cost per megapixel and its ratio to the same configuration's at 512 px."""

    def find(size: int, tile, config: str) -> Optional[Dict[str, Any]]:
        return next(
            (
                r
                for r in results
                if r["size"] == size and r.get("tile") == tile and r["config"] == config and "median_s" in r
            ),
            None,
        )

    for row in results:
        if "median_s" not in row:
            continue
        row["s_per_mpx"] = row["median_s"] / (row["width"] * row["height"] / 1e6)
        ref = find(row["size"], row.get("tile"), config_name("fp32", False, row.get("allocator_asked", "system")))
        if ref is not None:
            row["speedup_vs_fp32_nchw"] = ref["median_s"] / row["median_s"]
            row["loss_rel_diff_vs_fp32"] = abs(row["loss_at_content"] - ref["loss_at_content"]) / abs(
                ref["loss_at_content"]
            )
        base = find(512, None, row["config"])
        if base is not None:
            row["per_pixel_vs_512"] = row["s_per_mpx"] / (base["median_s"] / (base["width"] * base["height"] / 1e6))


def plan_estimate(results: List[Dict[str, Any]], config: str, sizes: Sequence[int] = (2048, 4000)) -> List[list]:
    """Seconds the default plan at each of ``sizes`` (4:3) would spend optimising on this machine in ``config``,
    predicted as evaluations x pixels x the measured s/Mpx of the nearest measured size (tiles: the tile
    row's). Rows: [size, scale, W×H (tile), evaluations, predicted s]; a 'total' row per size."""
    import torch

    from neuralens.style import StyleOptions
    from neuralens.style.plan import plan_run

    measured = sorted(
        (r["size"], r["s_per_mpx"]) for r in results if r["config"] == config and "s_per_mpx" in r and not r.get("tile")
    )
    tiled = [r["s_per_mpx"] for r in results if r["config"] == config and r.get("tile") and "s_per_mpx" in r]
    if not measured:
        return []
    rows: List[list] = []
    for size in sizes:
        plan = plan_run(StyleOptions(size=size).validate(), round(size * 0.75), size, "fp32", torch.device("cpu"))
        total = 0.0
        for scale in plan:
            if scale.tile is None:
                h, w = scale.shape
                cost = min(measured, key=lambda m: abs(m[0] - scale.long_side))[1]
                pixels = h * w
            else:
                y0, y1, x0, x1 = scale.boxes[0]
                h, w = y1 - y0, x1 - x0
                cost = tiled[0] if tiled else measured[-1][1]
                pixels = h * w  # evaluations already count every tile
            seconds = scale.evaluations * pixels / 1e6 * cost
            total += seconds
            shape = f"{w}×{h}" + (f" ({len(scale.boxes)} tiles)" if scale.tile else "")
            rows.append([size, scale.long_side, shape, scale.evaluations, f"{seconds:.0f}"])
        rows.append([size, "total", "", sum(s.evaluations for s in plan), f"{total:.0f} ({total / 60:.1f} min)"])
    return rows


def _markdown(data: Dict[str, Any]) -> str:
    rows = []
    for r in data["results"]:
        if "median_s" not in r:
            rows.append(
                [
                    r["size"],
                    "–",
                    r["config"],
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    "FAILED: " + r["error"].splitlines()[-1],
                ]
            )
            continue
        rows.append(
            [
                f"{r['size']}, tile {r['tile']}" if r.get("tile") else r["size"],
                f"{r['width']}×{r['height']}",
                r["config"],
                r["median_s"],
                f"{r['min_s']:.3g}–{r['max_s']:.3g}",
                r.get("s_per_mpx"),
                r.get("per_pixel_vs_512"),
                r.get("speedup_vs_fp32_nchw"),
                r["peak_rss_mib"],
                r["peak_rss_mib"] - r["rss_after_model_mib"],
                r["load_model_s"],
                f"{r.get('loss_rel_diff_vs_fp32', 0):.1e}",
            ]
        )
    table = markdown_table(
        [
            "size",
            "W×H",
            "precision / layout (allocator)",
            "median s/eval",
            "min–max s",
            "s/Mpx",
            "per pixel vs 512 px",
            "speed-up vs fp32 NCHW",
            "peak RSS MiB",
            "peak − after model MiB",
            "model load s",
            "loss rel. diff vs fp32",
        ],
        rows,
    )
    splits = [r for r in data["results"] if r.get("breakdown")]
    parts = sorted({k for r in splits for k in r["breakdown"]})
    split_table = markdown_table(
        ["size", "precision / layout"] + parts,
        [[r["size"], r["config"]] + [f"{100 * r['breakdown'].get(k, 0):.0f} %" for k in parts] for r in splits],
    )
    tune = data.get("autotune") or {}
    chosen = config_name(
        data.get("auto_precision") or "fp32", bool(tune.get("channels_last")), data.get("command_allocator", "system")
    )
    estimate = markdown_table(
        ["output", "scale", "W×H", "evaluations", "predicted s"], plan_estimate(data["results"], chosen)
    )
    skipped = (
        "\n\nbf16 is not measured: this CPU has no bf16 units (emulated, one evaluation at 384 px took over 5 minutes)."
        if data.get("bf16_skipped")
        else ""
    )
    m = data["machine"]
    return f"""## Machine

{machine_markdown(m)}
- Load average at end: {", ".join(str(x) for x in data["end_load_average"])}

## What is measured

One **evaluation** is one forward + backward pass of the real neuralens style objective
(`StyleTransfer(style, size=..., precision=..., channels_last=...).objective(content)`: VGG19 cut after relu5_1,
frozen, content loss on relu4_2 and Gram losses on relu1_1…relu5_1) with the gradient taken with respect to the
input pixels only — exactly the work of one L-BFGS evaluation in `neuralens stylize`. Content
`{data["content"]}` resized to the long side given, style `{data["style"]}`. After {data["warmup"]} untimed
warm-up evaluation(s), {data["repeats"]} are timed; the table shows their median (and range).
Each configuration runs in a fresh child process; **peak RSS** is that process's maximum resident set size
(`ru_maxrss`, which includes the Python interpreter, torch and the model), and "peak − after model" is the growth
after the network was built, i.e. roughly what activations, targets and gradients cost.
"loss rel. diff" compares the objective value at the content image with fp32 NCHW at the same size, as a
correctness check for bf16 and channels_last. On this machine `--precision auto` resolves to
**{data.get("auto_precision")}** (device {data.get("auto_device")}); `StyleOptions.channels_last` defaults to
`{data.get("default_channels_last")}` (None: neuralens picks the layout from the precision and device).
"+ jemalloc" / "+ mimalloc": the child ran under that allocator (`neuralens.allocator`; the `neuralens` command
runs under jemalloc where the system has it, else mimalloc, here: **{data.get("command_allocator", "system")}**);
without either, glibc's malloc.

## Results

{table}{skipped}

`neuralens.autotune` on this machine ({data.get("auto_precision")}, a {"×".join(map(str, tune.get("shape", [])))}
image): NCHW {tune.get("seconds", {}).get("nchw")} s, channels-last {tune.get("seconds", {}).get("channels_last")} s
an evaluation, so it chooses **{"channels-last" if tune.get("channels_last") else "NCHW"}**.

## Where the time goes (one profiled evaluation, shares of its op time)

{split_table if splits else "(not measured: --breakdown)"}

## The default plan on this machine, predicted from these costs ({chosen})

Evaluations of `neuralens stylize --size S` (4:3 photo) at each scale times its pixels times the measured
seconds per megapixel nearest to it (tiles: the tile row's); start-up, targets and saving not included.

{estimate}
"""


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--child", help=argparse.SUPPRESS)  # JSON arguments of one configuration
    p.add_argument("--quick", action="store_true")
    p.add_argument("--sizes", type=int, nargs="+")
    p.add_argument("--repeats", type=int)
    p.add_argument("--tile", type=int, help="also a TILE x TILE crop of the largest size, as a tiled scale")
    p.add_argument("--breakdown", type=int, nargs="*", default=[], help="sizes to profile by VGG block")
    p.add_argument("--name", help="report name (default style_speed); e.g. one per CPU kind")
    p.add_argument(
        "--allocators",
        nargs="+",
        choices=("system", "jemalloc", "mimalloc"),
        help="measure each configuration under these (default: the one the neuralens command uses here)",
    )
    p.add_argument("--only", nargs="+", default=[], metavar="CONFIG", help="e.g. 'bf16 channels_last'")
    p.add_argument("--render", type=Path, metavar="JSON", help="only write the .md again from a report's .json")
    args = p.parse_args(argv)
    if args.render:
        data = json.loads(args.render.read_text())
        args.render.with_suffix(".md").write_text(
            "# Style transfer: seconds per evaluation and peak memory\n\n" + _markdown(data)
        )
        return 0
    if args.child:
        kw = json.loads(args.child)
        print(MARKER + json.dumps(measure_in_this_process(**kw)), flush=True)
        return 0
    run(
        quick=args.quick,
        sizes=args.sizes,
        repeats=args.repeats,
        tile=args.tile,
        breakdown=args.breakdown,
        name=args.name,
        allocators=args.allocators,
        only=args.only,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
