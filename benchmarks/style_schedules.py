"""Which coarse-to-fine plan buys the lowest objective for its time: `python -m benchmarks.style_schedules`.

Each plan is a set of `StyleOptions` fields, run in this process (model loaded once per run, as the CLI does) on
the quality benchmark's pairs at 512 px, and its final 8-bit image scored with the same canonical objective as
`style_quality` (`style_pastiche.CanonicalObjective`). This is how neuralens's default plan was chosen; re-run it
after changing the optimiser or the defaults. It needs the inputs that `style_quality` prepares (it prepares them
itself when missing).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .style_common import RESULTS, WORK, machine_info, machine_markdown, markdown_table, report_name, write_report
from .style_pastiche import CanonicalObjective
from .style_quality import PAIRS, prepare_inputs

# name -> (StyleOptions fields, what it is)
PLANS: Dict[str, tuple] = {
    "default": ({}, "neuralens's default: 20 evaluations at 256 and 362 px, 75 at 512 px"),
    "one-scale-90": ({"scales": 1, "iterations": 90}, "no coarse-to-fine, 90 evaluations at 512 px"),
    "362-then-512": (
        {"min_scale_size": 362, "coarse_iterations": 30, "iterations": 70},
        "30 evaluations at 362 px, 70 at 512 px",
    ),
    "coarse-heavy": (
        {"coarse_iterations": 60, "iterations": 40},
        "more work at the cheap scales: 60 at 256 and 362 px, 40 at 512 px",
    ),
}


def run_plan(
    name: str, fields: Dict[str, Any], pair: str, folder: Path, canonical: CanonicalObjective
) -> Dict[str, Any]:
    """One plan on one pair: seconds (in-process, model loading included), evaluations, canonical scores."""
    from neuralens.style import StyleOptions, StyleTransfer

    content, style = folder / "content.png", folder / "style.png"
    start = time.perf_counter()
    transfer = StyleTransfer(str(style), StyleOptions(**fields))
    result = transfer.run(str(content))
    seconds = time.perf_counter() - start
    out = WORK / "schedules" / f"{pair}_{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    result.image.save(out)
    score = canonical.score(out)
    return {
        "plan": name,
        "pair": pair,
        "fields": fields,
        "seconds": seconds,
        "evaluations": len(result.history),
        "objective": score["objective"],
        "content": score["content"],
        "style": score["style"],
        "path": str(out),
    }


def run(
    plans: Optional[Sequence[str]] = None,
    pairs: Optional[Sequence[str]] = None,
    size: int = 512,
    out_dir: Path = RESULTS,
) -> Dict[str, Any]:
    info = machine_info()
    rows: List[Dict[str, Any]] = []
    for pair in pairs or PAIRS:
        folder = WORK / "quality" / f"{pair}_{size}"
        content, style, _ = prepare_inputs(pair, size, folder)
        canonical = CanonicalObjective(content, style)
        for name in plans or PLANS:
            print(f"[schedules] {pair}: {name} ...", file=sys.stderr, flush=True)
            rows.append(run_plan(name, PLANS[name][0], pair, folder, canonical))
            print(json.dumps({k: rows[-1][k] for k in ("plan", "pair", "seconds", "objective")}), file=sys.stderr)
    data = {
        "part": "style_schedules",
        "machine": info,
        "size": size,
        "results": rows,
        "end_load_average": [round(x, 2) for x in os.getloadavg()],
    }
    paths = write_report(
        out_dir,
        report_name("style_schedules", False),
        "Style transfer: coarse-to-fine plans",
        _markdown(data),
        data,
        False,
    )
    print(f"[schedules] wrote {paths['markdown']}", file=sys.stderr)
    return data


def _markdown(data: Dict[str, Any]) -> str:
    lines = [
        "## Machine",
        "",
        machine_markdown(data["machine"]),
        f"- Load average at end: {', '.join(str(x) for x in data['end_load_average'])}",
        "",
        "## Plans",
        "",
        f"Each plan ran on each pair at {data['size']} px (`benchmarks/style_schedules.py`); "
        "seconds are in-process (model loading and targets included, Python start-up not); the objective is "
        "the canonical one of the saved 8-bit image (lower is better).",
        "",
    ]
    lines.append(
        markdown_table(
            ["plan", "what", "StyleOptions"],
            [[name, what, json.dumps(fields)] for name, (fields, what) in PLANS.items()],
        )
    )
    lines += ["", "## Results", ""]
    lines.append(
        markdown_table(
            ["pair", "plan", "seconds", "evaluations", "objective", "L_content", "L_style"],
            [
                [r["pair"], r["plan"], r["seconds"], r["evaluations"], r["objective"], r["content"], r["style"]]
                for r in data["results"]
            ],
        )
    )
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plans", nargs="+", choices=sorted(PLANS))
    p.add_argument("--pairs", nargs="+", choices=sorted(PAIRS))
    args = p.parse_args(argv)
    run(args.plans, args.pairs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
