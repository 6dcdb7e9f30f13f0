"""Part 3: peak memory and time of high-resolution `neuralens stylize` runs (2048 px, and 4000 px wide).

The CLI is called as a user would, with few iterations (the point is memory and the per-scale cost, not the
painting): ``neuralens stylize tubingen starry_night --size S --iterations I --coarse-iterations C``. Each
run is its own child process; its peak RSS comes from wait4, and its address space is capped (RLIMIT_AS) so
that a size that does not fit fails with an allocation error rather than waking the OOM killer on a shared
machine. A 4000-px run is expected to use neuralens's tiled final pass; whatever the CLI does (tiles, a
refusal with the largest size that fits, a crash) is recorded as it happened.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from PIL import Image

from neuralens.style.plan import MAX_AUTO_TILE

from .seams import seam_ratios
from .style_common import (
    RESULTS,
    WORK,
    image_path,
    machine_info,
    machine_markdown,
    markdown_table,
    python,
    report_name,
    run_measured,
    safe_memory_limit,
    write_report,
)
from .style_figures import save_jpeg_under

FULL_SIZES = (2048, 4000)
FULL_ITERATIONS = (None, None)  # (final scale, each coarser scale): None = neuralens's defaults
QUICK_ITERATIONS = (1, 0)  # smoke: one evaluation at the output size only


def run_one(
    size: int,
    iterations: Optional[int],
    coarse_iterations: Optional[int],
    memory_limit_gib: Optional[float],
    timeout_s: float,
    out_dir: Path,
    smoke: bool,
    extra: Sequence[str] = (),
    name: Optional[str] = None,
    score: bool = False,
) -> Dict[str, Any]:
    """One `neuralens stylize --size SIZE` run: wall time, peak RSS, per-scale timings, output size and a
    preview (downscaled whole image, plus a full-resolution crop from the centre to look for seams); ``score``
    adds the saved image's canonical objective at full resolution (in this process, after the run)."""
    folder = WORK / "highres"
    folder.mkdir(parents=True, exist_ok=True)
    out, report = folder / f"out_{size}.png", folder / f"out_{size}.json"
    out.unlink(missing_ok=True)
    report.unlink(missing_ok=True)
    content, style = image_path("content", "tubingen"), image_path("style", "starry_night")
    cmd = [
        python(),
        "-m",
        "neuralens",
        "stylize",
        str(content),
        str(style),
        "-o",
        str(out),
        "--size",
        str(size),
        "--quiet",
        "--report",
        str(report),
        *extra,
    ]
    if iterations is not None:
        cmd += ["--iterations", str(iterations)]
    if coarse_iterations is not None:
        cmd += ["--coarse-iterations", str(coarse_iterations)]
    limit = safe_memory_limit(memory_limit_gib)
    print(f"[highres] {size} px (address space cap {limit} GiB) ...", file=sys.stderr, flush=True)
    m = run_measured(cmd, timeout_s=timeout_s, memory_limit_gib=limit)
    row: Dict[str, Any] = {
        "size": size,
        "iterations": iterations,
        "coarse_iterations": coarse_iterations,
        "content": str(content),
        "style": str(style),
        "run": m.as_dict(),
        "ok": m.returncode == 0 and out.is_file(),
    }
    if report.is_file():
        data = json.loads(report.read_text())
        run = (data.get("runs") or [{}])[0]
        row["timings"] = run.get("timings")
        row["evaluations"] = len(run.get("history", []))
        row["settings"] = data.get("settings")
        sizes = sorted({tuple(h["size"]) for h in run.get("history", [])}, key=lambda s: s[0] * s[1])
        row["scale_sizes"] = [list(s) for s in sizes]
        counts: Dict[str, int] = {}
        for h in run.get("history", []):
            key = "×".join(map(str, h["size"]))
            counts[key] = counts.get(key, 0) + 1
        row["evaluations_per_size"] = counts
    if row["ok"]:
        with Image.open(out) as image:
            row["output_size"] = list(image.size)
            stem = f"{name}_{size}" if name else report_name(f"style_highres_{size}", smoke)
            preview = image.copy()
            preview.thumbnail((1024, 1024), Image.LANCZOS)
            save_jpeg_under(preview, out_dir / f"{stem}_preview.jpg", 400_000)
            w, h = image.size
            crop = image.crop((w // 2 - 384, h // 2 - 256, w // 2 + 384, h // 2 + 256))
            save_jpeg_under(crop, out_dir / f"{stem}_crop.jpg", 400_000)
            row["preview"], row["crop"] = f"{stem}_preview.jpg", f"{stem}_crop.jpg"
        # The output size is missing from the sizes optimised when its scale went in tiles (fitted to the
        # image, so not always MAX_AUTO_TILE square): then measure the jumps across their edges.
        tiled = row.get("output_size") and list(row["output_size"]) not in [list(s) for s in row.get("scale_sizes", [])]
        if tiled:
            row["seams"] = seam_ratios(str(out), MAX_AUTO_TILE, 128)
        if score:
            row["canonical"] = canonical_score(out, content, style)
    return row


def canonical_score(out: Path, content: Path, style: Path) -> Dict[str, Any]:
    """The canonical objective of the saved image at its own size (``style_pastiche``; fp32 NCHW, whole image:
    at 4000x3000 about 150 s and 13 GiB on the AVX512-BF16 EPYC), with the seconds and this process's peak RSS."""
    import resource
    import time

    from .style_pastiche import score_at_own_size

    started = time.perf_counter()
    score = score_at_own_size(out, content, style, WORK / "highres")
    score["seconds"] = round(time.perf_counter() - started, 1)
    score["scorer_peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return score


def run(
    quick: bool = False,
    sizes: Optional[Sequence[int]] = None,
    iterations: Optional[int] = None,
    coarse_iterations: Optional[int] = None,
    memory_limit_gib: Optional[float] = 20.0,
    timeout_s: Optional[float] = None,
    out_dir: Path = RESULTS,
    name: Optional[str] = None,
    score: bool = False,
) -> Dict[str, Any]:
    """Run each size and write style_highres(.md/.json) plus previews, or ``name``(.md/.json) and ``name``_SIZE
    pictures (e.g. one report per CPU kind). ``timeout_s`` per run (default one hour, ten minutes for
    --quick); a run past it is killed and reported as timed out."""
    timeout_s = timeout_s or (600 if quick else 3600)
    default_iters = QUICK_ITERATIONS if quick else FULL_ITERATIONS
    iterations = iterations if iterations is not None else default_iters[0]
    coarse_iterations = coarse_iterations if coarse_iterations is not None else default_iters[1]
    info = machine_info()
    rows = [
        run_one(s, iterations, coarse_iterations, memory_limit_gib, timeout_s, out_dir, quick, name=name, score=score)
        for s in (sizes or FULL_SIZES)
    ]
    data = {
        "part": "style_highres",
        "machine": info,
        "results": rows,
        "memory_limit_gib": memory_limit_gib,
        "timeout_s": timeout_s,
        "end_load_average": [round(x, 2) for x in os.getloadavg()],
    }
    paths = write_report(
        out_dir,
        name or report_name("style_highres", quick),
        "Style transfer: high resolution",
        _markdown(data),
        data,
        quick,
    )
    print(f"[highres] wrote {paths['markdown']}", file=sys.stderr)
    return data


def _status(r: Dict[str, Any]) -> str:
    """ok, timed out, killed by a signal (e.g. the kernel's OOM killer: SIGKILL) or failed with a status."""
    run = r["run"]
    if r["ok"]:
        return "ok"
    if run["timed_out"]:
        return "timed out"
    code = run["returncode"]
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"FAILED (killed by {name})"
    return f"FAILED (exit status {code})"


def _markdown(data: Dict[str, Any]) -> str:
    table_rows = []
    for r in data["results"]:
        t = r.get("timings") or {}
        status = _status(r)
        out = "×".join(map(str, r["output_size"])) if r.get("output_size") else "–"
        table_rows.append(
            [
                r["size"],
                out,
                status,
                r["run"]["wall_s"],
                t.get("total"),
                t.get("load_model"),
                r["run"]["max_rss_mib"] / 1024,
                r["run"]["memory_limit_gib"],
                r.get("evaluations"),
                " → ".join("×".join(map(str, s)) for s in r.get("scale_sizes", [])) or "–",
            ]
        )
    lines = [
        f"""## Machine

{machine_markdown(data["machine"])}
- Load average at end: {", ".join(str(x) for x in data["end_load_average"])}

## What is measured

`neuralens stylize tubingen starry_night --size S --quiet` (plus `--iterations I --coarse-iterations C` where
listed below; otherwise neuralens's default plan) (content
{data["results"][0]["content"] if data["results"] else "–"}), one child process per size. **Wall** includes
start-up; **run total** is neuralens's own `timings.total` (optimisation and targets, without start-up and
saving). **Peak RSS** is the child's maximum resident set size (`ru_maxrss`), with its address space capped at
the listed GiB (RLIMIT_AS, never more than what the machine had available at launch minus 1 GiB), so that a
size too large fails cleanly; a run longer than {data.get("timeout_s", 3600):.0f} s is killed. A size above what fits in memory should be handled by the tiled final pass (or a
refusal naming the largest size that fits).

"""
    ]
    lines.append(
        markdown_table(
            [
                "size",
                "output W×H",
                "status",
                "wall s",
                "run total s",
                "model load s",
                "peak RSS GiB",
                "cap GiB",
                "evaluations",
                "sizes optimised (W×H; tiles too)",
            ],
            table_rows,
        )
    )
    for r in data["results"]:
        lines.append(f"\n### {r['size']} px\n")
        if r["iterations"] is None and r["coarse_iterations"] is None:
            lines.append("Iterations: neuralens's defaults.")
        else:
            lines.append(
                f"Iterations: {r['iterations']} at the output size, {r['coarse_iterations']} at each coarser scale."
            )
        if r.get("evaluations_per_size"):
            lines.append(
                "Evaluations per optimised size (a tile size counts every tile): "
                + ", ".join(f"{k}: {v}" for k, v in r["evaluations_per_size"].items())
                + "."
            )
        if r.get("timings"):
            lines.append("Timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items()))
        if r.get("canonical"):
            c = r["canonical"]
            lines.append(
                f"Canonical objective of the saved image at full resolution (`--score`): {c['objective']:.3g} "
                f"(content {c['content']:.3g}, style {c['style']:.3g}; scored in {c['seconds']} s)."
            )
        if r.get("seams"):
            lines.append(
                f"Seams (`benchmarks/seams.py`): mean pixel jump across the {r['seams']['edges']} tile edges "
                f"relative to the typical jump: columns {r['seams']['columns']:.3f}, rows "
                f"{r['seams']['rows']:.3f} (1 = no seam)."
            )
        if not r["ok"]:
            lines += [
                "",
                "The run did not produce an image. Last lines of its output:",
                "",
                "```",
                r["run"]["stderr_tail"],
                "```",
            ]
        if r.get("preview"):
            lines += [
                "",
                f"![whole image, downscaled]({r['preview']})",
                "",
                f"![centre crop at full resolution (look for seams)]({r['crop']})",
            ]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--sizes", type=int, nargs="+")
    p.add_argument("--iterations", type=int)
    p.add_argument("--coarse-iterations", type=int)
    p.add_argument("--memory-limit-gib", type=float, default=20.0, help="0 = no cap")
    p.add_argument("--timeout", type=float, help="seconds per run (default 3600, 600 with --quick)")
    p.add_argument("--name", help="report name (default style_highres); e.g. one per CPU kind")
    p.add_argument("--score", action="store_true", help="also the canonical objective of each output (slow, memory)")
    args = p.parse_args(argv)
    run(
        args.quick,
        args.sizes,
        args.iterations,
        args.coarse_iterations,
        args.memory_limit_gib,
        args.timeout,
        name=args.name,
        score=args.score,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
