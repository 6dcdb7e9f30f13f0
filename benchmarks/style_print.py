"""Issue 17: what a code change or a plan buys at print sizes, on the canonical objective at the output size.

    python -m benchmarks.style_print --size 1024 --label after [--set fast_start=false] [--evaluations 20,20,40,10]
    python -m benchmarks.style_print --render

Each call runs ``StyleTransfer(starry_night, size=S, seed=0, **set).run(tubingen)`` in this process (the model
loaded once, as the CLI does) and appends one row to ``results/style_print.json``: the wall time of the run
(start-up not included), neuralens's timings per scale, the loss after every evaluation of the output scale (so
one run shows what any smaller evaluation count at that scale would have reached: L-BFGS does not look at the
count until it is spent), and the canonical objective of the saved 8-bit image (``style_pastiche``). ``--render``
writes ``results/style_print.md`` from all rows. A row of the code before a change is measured by running this
file from a checkout of that commit (the file only needs neuralens's public API and ``style_common``).
``--evaluations`` replaces the plan's evaluation counts, one per scale coarse to fine, to try another plan without
changing neuralens (it stands in for ``neuralens.style.plan.scale_iterations`` in this process). The benchmark
runs under the allocator the `neuralens` command would use (``neuralens.allocator``); rows record it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Dict, List

from .style_common import RESULTS, WORK, image_path, machine_info, machine_markdown, markdown_table

DATA = RESULTS / "style_print.json"


def parse_fields(items: List[str]) -> Dict[str, Any]:
    """["fast_start=false", "iterations=5"] -> {"fast_start": False, "iterations": 5}, each value read as the
    command line reads that StyleOptions field."""
    from neuralens.options import parse_text, specs
    from neuralens.style import StyleOptions

    known = specs(StyleOptions)
    fields = {}
    for item in items:
        name, _, text = item.partition("=")
        if name not in known:
            raise SystemExit(f"error: --set {item}: StyleOptions has no field {name!r}")
        fields[name] = parse_text(name, known[name], text)
    return fields


def use_evaluations(counts: List[int]) -> None:
    """Make every plan in this process use ``counts`` evaluations per scale (coarse to fine)."""
    from neuralens.style import plan

    def fixed(sizes, iterations=None, coarse_iterations=None) -> List[int]:
        if len(sizes) != len(counts):
            raise SystemExit(f"error: --evaluations: {len(counts)} counts for {len(sizes)} scales {list(sizes)}")
        return list(counts)

    plan.scale_iterations = fixed


def run(size: int, label: str, fields: Dict[str, Any]) -> Dict[str, Any]:
    """One run; returns its row."""
    from PIL import Image

    from neuralens.style import StyleOptions, StyleTransfer

    from .style_common import own_max_rss_mib
    from .style_pastiche import score_at_own_size

    content, style = image_path("content", "tubingen"), image_path("style", "starry_night")
    started = time.perf_counter()
    transfer = StyleTransfer(str(style), StyleOptions(size=size, seed=0, **fields))
    result = transfer.run(str(content))
    seconds = time.perf_counter() - started
    folder = WORK / "print"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{size}_{label}.png"
    result.image.save(out)
    peak_rss_mib = own_max_rss_mib()
    per_scale: Dict[str, int] = {}
    for h in result.history:
        per_scale[str(h["scale"])] = per_scale.get(str(h["scale"]), 0) + 1
    last_scale = result.history[-1]["scale"]
    curve = [h["loss"] for h in result.history if h["scale"] == last_scale]
    score = score_at_own_size(out, content, style, folder)
    Image.open(out).crop((0, 0, min(512, result.image.width), min(384, result.image.height))).save(
        folder / f"{size}_{label}_crop.png"
    )
    return {
        "label": label,
        "size": size,
        "fields": fields,
        "seconds": round(seconds, 1),
        "evaluations": len(result.history),
        "evaluations_per_scale": list(per_scale.values()),
        "peak_rss_mib_before_scoring": round(peak_rss_mib),
        "timings": {k: round(v, 2) for k, v in result.timings.items()},
        "setup": getattr(result, "setup", {}),
        "last_scale_curve": curve,
        "objective": score["objective"],
        "machine": machine_info(),
    }


def render(rows: List[Dict[str, Any]]) -> str:
    """The Markdown report of all rows."""
    machines = {r["machine"].get("cpu_model", "?") for r in rows}
    lines = ["# Print sizes: objective and time per plan and code version (issue 17)", ""]
    lines += ["Made by `python -m benchmarks.style_print` (see its docstring); one row per run.", ""]
    table = []
    for r in rows:
        curve = r["last_scale_curve"]
        at = {k: min(curve[:k]) if len(curve) >= k else None for k in (5, 10, 19)}
        table.append(
            [
                r["size"],
                r["label"],
                ", ".join(f"{k}={v}" for k, v in r["fields"].items()) or "defaults",
                (r["machine"].get("neuralens_commit") or "?")[:7]
                + ("+" if r["machine"].get("neuralens_dirty") else ""),
                ", ".join(r["machine"].get("cpu_bf16") or []) or "none",
                r.get("setup", {}).get("precision", "?"),
                "channels-last" if r.get("setup", {}).get("channels_last") else "NCHW",
                r.get("setup", {}).get("allocator", "system"),
                ", ".join(map(str, r["evaluations_per_scale"])) if "evaluations_per_scale" in r else r["evaluations"],
                r["seconds"],
                at[5],
                at[10],
                at[19],
                r["objective"],
            ]
        )
    header = ["size", "label", "settings", "commit", "CPU's bf16 units", "precision", "layout", "allocator"]
    header += ["evaluations (per scale)", "run s"]
    header += ["loss after 5 at output scale"]
    header += ["after 10", "after 19", "canonical objective of the saved image"]
    lines += [markdown_table(header, table), ""]
    lines += [f"Machine(s): {', '.join(sorted(machines))}.", "", machine_markdown(rows[-1]["machine"]), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--label", default="run")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="StyleOptions fields")
    parser.add_argument(
        "--evaluations",
        type=lambda text: [int(n) for n in text.split(",")],  # argparse turns a ValueError into a usage error
        help="evaluations per scale, coarse to fine, e.g. 20,20,40,10,10 (default: the plan's)",
    )
    parser.add_argument("--render", action="store_true", help="only write the Markdown report from the JSON")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    rows = json.loads(args.data.read_text()) if args.data.exists() else []
    if not args.render:
        from neuralens import allocator

        allocator.use_fast_allocator()
        fields = parse_fields(args.set)
        if args.evaluations:
            use_evaluations(args.evaluations)
        row = run(args.size, args.label, fields)
        rows.append(row)
        args.data.parent.mkdir(parents=True, exist_ok=True)
        args.data.write_text(json.dumps(rows, indent=1))
        print(json.dumps({k: row[k] for k in ("label", "size", "seconds", "evaluations", "objective")}))
    (args.data.parent / "style_print.md").write_text(render(rows))


if __name__ == "__main__":
    main()
