"""Part 1: seconds per loss evaluation and peak memory, per image size and precision/layout.

One evaluation = what every optimiser step of neuralens costs: the real style objective (VGG19 cut after
relu5_1, frozen; content relu4_2 + Gram losses relu1_1..relu5_1) forward, then backward to the input
pixels only. Each (size, precision, layout) runs in a fresh child process (``--child``), so the peak RSS
it reports is that configuration's alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
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


def config_name(precision: str, channels_last: bool) -> str:
    return f"{precision} {'channels_last' if channels_last else 'NCHW'}"


def measure_in_this_process(
    size: int, precision: str, channels_last: bool, repeats: int, warmup: int, content: str, style: str
) -> Dict[str, Any]:
    """Time ``repeats`` evaluations (after ``warmup`` untimed ones) of the style objective at ``size``."""
    import torch

    from neuralens.imageio import image_to_tensor, load_image, resize_long_side
    from neuralens.style import StyleTransfer

    rss_start = own_max_rss_mib()
    t0 = time.perf_counter()
    st = StyleTransfer(style, size=size, precision=precision, channels_last=channels_last)
    load_s = time.perf_counter() - t0
    rss_model = own_max_rss_mib()
    target = image_to_tensor(resize_long_side(load_image(content), size))
    t0 = time.perf_counter()
    objective = st.objective(target)  # content targets and style Grams, once, without gradients
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
    return {
        "size": size,
        "width": int(target.shape[3]),
        "height": int(target.shape[2]),
        "precision": precision,
        "channels_last": channels_last,
        "threads": torch.get_num_threads(),
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


def run(
    quick: bool = False,
    sizes: Optional[Sequence[int]] = None,
    repeats: Optional[int] = None,
    warmup: int = 1,
    out_dir=RESULTS,
    memory_limit_gib: Optional[float] = 20.0,
) -> Dict[str, Any]:
    """Measure every (size, configuration) in its own child process; write style_speed(.md/.json)."""
    sizes = list(sizes or (QUICK_SIZES if quick else FULL_SIZES))
    repeats = repeats or (2 if quick else 5)
    content, style = image_path("content", "tubingen"), image_path("style", "starry_night")
    info = machine_info()
    results: List[Dict[str, Any]] = []
    for size in sizes:
        for precision, channels_last in CONFIGS:
            name = config_name(precision, channels_last)
            print(f"[speed] {size} px {name} ...", file=sys.stderr, flush=True)
            args = json.dumps(
                {
                    "size": size,
                    "precision": precision,
                    "channels_last": channels_last,
                    "repeats": repeats,
                    "warmup": warmup,
                    "content": str(content),
                    "style": str(style),
                }
            )
            m = run_measured(
                [python(), "-m", "benchmarks.style_speed", "--child", args],
                timeout_s=1800,
                memory_limit_gib=safe_memory_limit(memory_limit_gib),
            )
            row: Dict[str, Any] = {
                "size": size,
                "config": name,
                "precision": precision,
                "channels_last": channels_last,
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
    from neuralens import devices
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
        "repeats": repeats,
        "warmup": warmup,
        "results": results,
        "end_load_average": _load(),
    }
    paths = write_report(
        out_dir,
        report_name("style_speed", quick),
        "Style transfer: seconds per evaluation and peak memory",
        _markdown(data),
        data,
        quick,
    )
    print(f"[speed] wrote {paths['markdown']}", file=sys.stderr)
    return data


def _load() -> List[float]:
    import os

    return [round(x, 2) for x in os.getloadavg()]


def _add_relative(results: List[Dict[str, Any]]) -> None:
    """Speed-up over, and loss difference from, fp32 NCHW at the same size (the reference path)."""
    for row in results:
        ref = next(
            (
                r
                for r in results
                if r["size"] == row["size"] and r["precision"] == "fp32" and not r["channels_last"] and "median_s" in r
            ),
            None,
        )
        if ref is None or "median_s" not in row:
            continue
        row["speedup_vs_fp32_nchw"] = ref["median_s"] / row["median_s"]
        row["loss_rel_diff_vs_fp32"] = abs(row["loss_at_content"] - ref["loss_at_content"]) / abs(
            ref["loss_at_content"]
        )


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
                    "FAILED: " + r["error"].splitlines()[-1],
                ]
            )
            continue
        rows.append(
            [
                r["size"],
                f"{r['width']}×{r['height']}",
                r["config"],
                r["median_s"],
                f"{r['min_s']:.3g}–{r['max_s']:.3g}",
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
            "precision / layout",
            "median s/eval",
            "min–max s",
            "speed-up vs fp32 NCHW",
            "peak RSS MiB",
            "peak − after model MiB",
            "model load s",
            "loss rel. diff vs fp32",
        ],
        rows,
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

## Results

{table}
"""


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--child", help=argparse.SUPPRESS)  # JSON arguments of one configuration
    p.add_argument("--quick", action="store_true")
    p.add_argument("--sizes", type=int, nargs="+")
    p.add_argument("--repeats", type=int)
    args = p.parse_args(argv)
    if args.child:
        kw = json.loads(args.child)
        print(MARKER + json.dumps(measure_in_this_process(**kw)), flush=True)
        return 0
    run(quick=args.quick, sizes=args.sizes, repeats=args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
