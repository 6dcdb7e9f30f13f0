"""What a time budget buys: the style and content losses of a `train-style --minutes M` run against the minutes
spent, from its training report (the loss history is recorded every 10 steps), as a plot and a table at every
tenth of the budget.

    python -m benchmarks.fast_curve REPORT.json [--out results/] [--name fast_curve]

The losses are the training objective's (per crop, averaged over the last logged step's batch: noisy); the
canonical objective of the finished model against the optimisation result is `benchmarks.fast_quality`'s.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from .style_common import RESULTS, json_safe, markdown_table


def main(argv: Optional[Sequence[str]] = None) -> int:
    from neuralens.fast import preview

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("report", type=Path, help="a train-style report (OUTPUT.json)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--name", default="fast_curve")
    args = p.parse_args(argv)
    report = json.loads(args.report.read_text())
    history = report["result"]["history"]
    points = [dict(h, minutes=h["seconds"] / 60) for h in history]
    args.out.mkdir(parents=True, exist_ok=True)
    title = f"{Path(report['style']).name}: training loss against minutes"
    plot = preview.loss_plot(points, None, title=title, x_key="minutes", x_label="minutes")
    plot.save(args.out / f"{args.name}.png")
    budget = points[-1]["minutes"]
    rows, marks = [], [budget * k / 10 for k in range(1, 11)]
    for mark in marks:
        near = [q for q in points if q["minutes"] <= mark + 1e-9]
        window = near[-5:]  # the last five logged steps before the mark: one logged step is a single batch
        if not window:
            continue
        style = sum(q["style"] for q in window) / len(window)
        content = sum(q["content"] for q in window) / len(window)
        rows.append([round(mark, 1), window[-1]["iteration"], style, content])
    settings = report.get("settings", {})
    machine = report.get("machine", {})
    body = (
        f"`{report.get('command') or 'train-style'}`\n\n"
        f"{report['result']['iterations']} steps in {report['result']['seconds'] / 60:.1f} minutes "
        f"({report['result']['images_per_second']:.2f} images/s); {settings.get('architecture')} network, "
        f"{settings.get('size')}-px crops; machine: {machine.get('cpus')} CPUs, {machine.get('threads')} threads, "
        f"{machine.get('precision')}, load average at start {machine.get('load_average')}.\n\n"
        + markdown_table(["minutes", "step", "style loss (mean of 5 logged steps)", "content loss"], rows)
        + f"\n\n![curve]({args.name}.png)\n"
    )
    (args.out / f"{args.name}.md").write_text("# Feed-forward training: loss against minutes\n\n" + body)
    (args.out / f"{args.name}.json").write_text(json.dumps(json_safe({"rows": rows, "history": points}), indent=1))
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
