"""Part 2: quality against wall-clock time, neuralens side by side with `pastiche`, in the same run.

For each content/style pair both programs get the same pre-resized PNG files (so neither resizes them
again), the same layers and the same objective (pastiche's weights converted, see style_pastiche.py), init
from the content image and L-BFGS. Every intermediate image either program writes is scored with one
canonical objective (style_pastiche.CanonicalObjective) and paired with the seconds since that program's
process was started (the file's modification time), so start-up, model loading and image saving count for
both the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from PIL import Image

from .style_common import (
    RESULTS,
    WORK,
    Measured,
    image_path,
    machine_info,
    machine_markdown,
    markdown_table,
    python,
    report_name,
    run_measured,
    write_report,
)
from .style_figures import first_at_or_below, line_plot, save_jpeg_under, save_png, side_by_side
from .style_pastiche import CanonicalObjective, PasticheWeights, check_conversion

PAIRS = {"tubingen_starry_night": ("tubingen", "starry_night"), "chelsea_the_scream": ("chelsea", "the_scream")}
REFERENCE_STEPS = 300  # the target: pastiche's objective after 300 L-BFGS steps
TIME_FRACTION = 5  # ... reached by neuralens in at most 1/5 of pastiche's wall time
DEFAULT_WALL_TARGET_S = 90  # default `neuralens stylize` at 512 px, including start-up
CURVE_ITERATIONS = 200  # the snapshot run goes on longer than the default (75 at 512 px): what more time buys


# -- inputs --------------------------------------------------------------------------------------------------
def prepare_inputs(pair: str, size: int, folder: Path) -> Tuple[Path, Path, Path]:
    """Write content.png and style.png resized (Lanczos) to long side ``size``, and check.png (the content
    with seeded Gaussian noise: an image with non-trivial content and style losses for the formula check)."""
    import numpy as np

    from neuralens.imageio import load_image, resize_long_side

    content_name, style_name = PAIRS[pair]
    folder.mkdir(parents=True, exist_ok=True)
    content = resize_long_side(load_image(image_path("content", content_name)), size)
    style = resize_long_side(load_image(image_path("style", style_name)), size)
    noisy = np.asarray(content, dtype=np.float64) + np.random.default_rng(0).normal(
        0, 25, (content.height, content.width, 3)
    )
    paths = folder / "content.png", folder / "style.png", folder / "check.png"
    content.save(paths[0])
    style.save(paths[1])
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(paths[2])
    return paths


# -- the two programs ----------------------------------------------------------------------------------------
def run_pastiche(
    content: Path, style: Path, folder: Path, steps: int, every: int, weight_args: Sequence[str], timeout_s: float
) -> Tuple[Measured, List[Dict[str, Any]]]:
    """Run pastiche's CLI (layers and weights ``weight_args``) for ``steps`` L-BFGS steps, saving the image every ``every`` steps into
    ``folder``/workspace (named by step, zero-padded) and logging its loss at the same steps.

    Returns the measured process and the snapshots: {step, seconds (mtime since start), log_seconds (pastiche's
    own elapsed), pastiche_loss (its loss before 8-bit rounding), path}."""
    workspace = folder / "workspace"
    out = folder / "pastiche.png"
    if workspace.is_dir():
        shutil.rmtree(workspace)  # snapshots of an earlier run would be scored as this one's
    out.unlink(missing_ok=True)
    size = max(Image.open(content).size)
    style_size = max(Image.open(style).size)
    cmd = [
        python(),
        "-m",
        "pastiche",
        "--content",
        str(content),
        "--styles",
        str(style),
        "--output",
        str(out),
        "--size",
        str(size),
        "--style-size",
        str(style_size),
        "--optimizer",
        "lbfgs",
        "--num-steps",
        str(steps),
        "--seed",
        "0",
        "--workspace",
        str(workspace),
        "--workspace-step",
        str(every),
        "--info-step",
        str(every),
        *weight_args,
    ]
    # A NaN loss never recovers: stop a diverged pastiche instead of letting it run its remaining steps.
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    m = run_measured(cmd, timeout_s=timeout_s, env=env, stop_when=lambda log: divergence_step(log) is not None)
    logged: Dict[int, Tuple[float, float]] = {}
    for line in m.stdout.splitlines():
        match = re.match(r"^(\d+)\s+([0-9.]+)\s+(\S+)\s*$", line.strip())
        if match:
            logged[int(match.group(1))] = (float(match.group(2)), float(match.group(3)))
    snaps = []
    for path in sorted(workspace.glob("*.png")) if workspace.is_dir() else []:
        if path.stem.isdigit():
            step = int(path.stem)
            log = logged.get(step, (None, None))
            snaps.append(
                {
                    "step": step,
                    "seconds": path.stat().st_mtime - m.started_epoch,
                    "log_seconds": log[0],
                    "pastiche_loss": log[1],
                    "path": str(path),
                }
            )
    return m, sorted(snaps, key=lambda s: s["step"])


def run_neuralens(
    content: Path,
    style: Path,
    folder: Path,
    name: str,
    size: int,
    extra: Sequence[str],
    save_every: Optional[int],
    timeout_s: float,
    cwd: Optional[Path] = None,
) -> Tuple[Measured, Dict[str, Any], List[Dict[str, Any]]]:
    """Run `neuralens stylize` (default settings plus ``extra``), optionally saving the image every
    ``save_every`` evaluations; ``cwd``: run there (``-m neuralens`` then imports that checkout's package).
    Returns the measured process, its --report JSON and the snapshots {iteration, seconds (mtime since
    start), path}."""
    out = folder / f"{name}.png"
    report = folder / f"{name}.json"
    for old in folder.glob(f"{name}.*.png"):
        old.unlink()
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
    if save_every:
        cmd += ["--save-every", str(save_every)]
    folder.mkdir(parents=True, exist_ok=True)
    m = run_measured(cmd, timeout_s=timeout_s, cwd=cwd)
    data = json.loads(report.read_text()) if m.returncode == 0 and report.is_file() else {}
    snaps = []
    for path in folder.glob(f"{name}.*.png"):
        suffix = path.name[len(name) + 1 : -len(".png")]
        if suffix.isdigit():
            snaps.append(
                {"iteration": int(suffix), "seconds": path.stat().st_mtime - m.started_epoch, "path": str(path)}
            )
    return m, data, sorted(snaps, key=lambda s: s["iteration"])


# -- one pair ------------------------------------------------------------------------------------------------
def pastiche_args(weights: PasticheWeights, objective: str) -> List[str]:
    """pastiche's layer/weight options: the converted weights ("same": it minimises the canonical objective)
    or only the layers with pastiche's own default weights ("own": a different balance, scored canonically)."""
    if objective == "same":
        return weights.cli_args()
    if objective == "own":
        return ["--content-layers", *weights.content_layers, "--style-layers", *weights.style_layers]
    raise ValueError(f"unknown pastiche objective {objective!r} (same or own)")


def run_pair(
    pair: str,
    size: int,
    steps: int,
    every: int,
    neuralens_extra: Sequence[str],
    check: bool,
    out_dir: Path,
    smoke: bool,
    timeout_s: float,
    objective: str = "same",
    curve_extra: Sequence[str] = (),
) -> Dict[str, Any]:
    """Both programs on one pair, every snapshot scored; the figures written under ``out_dir``.
    ``curve_extra`` are further arguments of the snapshot run only (e.g. more evaluations)."""
    folder = WORK / "quality" / f"{pair}_{size}"
    content, style, check_png = prepare_inputs(pair, size, folder)
    canonical = CanonicalObjective(content, style)
    weights = canonical.pastiche_weights()
    result: Dict[str, Any] = {
        "pair": pair,
        "size": list(canonical.size),
        "alpha": canonical.alpha,
        "beta": canonical.beta,
        "content_layers": canonical.content_layers,
        "style_layers": canonical.style_layers,
        "pastiche_weights": weights.__dict__,
        "pastiche_steps": steps,
        "pastiche_objective": objective,
        "pastiche_args": pastiche_args(weights, objective),
        "neuralens_extra_args": list(neuralens_extra),
        "curve_extra_args": list(curve_extra),
    }
    if check:
        print(
            f"[quality] {pair}: checking the weight conversion with pastiche's own loss ...",
            file=sys.stderr,
            flush=True,
        )
        result["conversion_check"] = check_conversion(content, style, check_png, canonical)

    print(f"[quality] {pair}: pastiche, {steps} steps ...", file=sys.stderr, flush=True)
    pm, psnaps = run_pastiche(
        content, style, folder / "pastiche", steps, every, pastiche_args(weights, objective), timeout_s
    )
    result["pastiche_run"] = pm.as_dict()
    for s in psnaps:
        s.update(canonical.score(s["path"]))
    result["pastiche_points"] = psnaps
    result["pastiche_diverged_at"] = divergence_step(pm.stdout)
    p_final = folder / "pastiche" / "pastiche.png"
    if pm.returncode == 0 and p_final.is_file():
        result["pastiche_final"] = dict(canonical.score(p_final), seconds=pm.wall_s, path=str(p_final))

    print(f"[quality] {pair}: neuralens stylize (plain) ...", file=sys.stderr, flush=True)
    nm, nreport, _ = run_neuralens(
        content, style, folder / "neuralens", "plain", size, neuralens_extra, None, timeout_s
    )
    result["neuralens_plain_run"] = nm.as_dict()
    n_final = folder / "neuralens" / "plain.png"
    if nm.returncode == 0 and n_final.is_file():
        result["neuralens_final"] = dict(
            canonical.score(n_final),
            seconds=nm.wall_s,
            path=str(n_final),
            evaluations=len(nreport.get("runs", [{}])[0].get("history", [])),
            timings=nreport.get("runs", [{}])[0].get("timings"),
        )

    print(f"[quality] {pair}: neuralens stylize with snapshots ...", file=sys.stderr, flush=True)
    im, ireport, isnaps = run_neuralens(
        content, style, folder / "neuralens", "snap", size, [*neuralens_extra, *curve_extra], every, timeout_s
    )
    result["neuralens_snapshot_run"] = im.as_dict()
    for s in isnaps:
        s.update(canonical.score(s["path"]))
    snap_final = folder / "neuralens" / "snap.png"
    if im.returncode == 0 and snap_final.is_file():
        isnaps.append(dict(canonical.score(snap_final), iteration="final", seconds=im.wall_s, path=str(snap_final)))
    result["neuralens_points"] = isnaps
    result["neuralens_history"] = _history_points(ireport, isnaps)
    _targets(result, smoke)
    _figures(result, content, out_dir, smoke)
    return result


def divergence_step(log: str) -> Optional[int]:
    """The first logged step whose pastiche loss is inf or NaN (its L-BFGS has no line search and can blow
    up); None when every logged loss is finite."""
    for line in log.splitlines():
        match = re.match(r"^(\d+)\s+[0-9.]+\s+(\S+)\s*$", line.strip())
        if match and match.group(2).lower() in ("inf", "-inf", "nan"):
            return int(match.group(1))
    return None


def _history_points(report: Dict[str, Any], snaps: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """neuralens's own per-evaluation losses at the final scale (bf16 where it ran in bf16, but the same
    formula and weights as the canonical objective there) on the process clock. History times count from
    the start of the optimisation; the offset to process start is taken from a snapshot written at a known
    iteration (its mtime minus its history time), which includes start-up and model loading."""
    runs = report.get("runs") or []
    if not runs or not runs[0].get("history"):
        return []
    history = runs[0]["history"]
    by_iteration = {h["iteration"]: h for h in history}
    offset = None
    for s in snaps:
        if isinstance(s.get("iteration"), int) and s["iteration"] in by_iteration:
            offset = s["seconds"] - by_iteration[s["iteration"]]["elapsed"]
            break
    last_scale = max(h["scale"] for h in history)
    return [
        {
            "iteration": h["iteration"],
            "seconds": None if offset is None else h["elapsed"] + offset,
            "loss": h["loss"],
            "content": h["content_loss"],
            "style": h["style_loss"],
        }
        for h in history
        if h["scale"] == last_scale
    ]


def _targets(r: Dict[str, Any], smoke: bool) -> None:
    """The issue's two targets, PASS/FAIL with the numbers (only meaningful at the reference settings)."""
    reference = (
        not smoke
        and r["pastiche_steps"] == REFERENCE_STEPS
        and max(r["size"]) == 512
        and not r["neuralens_extra_args"]
        and r["pastiche_objective"] == "same"
    )
    targets: Dict[str, Any] = {"reference_settings": reference}
    pf, nf = r.get("pastiche_final"), r.get("neuralens_final")
    if r.get("pastiche_diverged_at") is not None:
        # Its final image is then whatever NaN pixels turn into when saved: no objective to reach.
        targets["reach_pastiche"] = {
            "not_comparable": f"pastiche diverged (its logged loss was inf/NaN by step {r['pastiche_diverged_at']})",
            "pass": None,
        }
    elif pf:
        # The snapshot run's points, and the plain run's final image at its wall time: both are measurements.
        points = [(s["seconds"], s["objective"]) for s in r["neuralens_points"]]
        if nf:
            points.append((nf["seconds"], nf["objective"]))
        reach = first_at_or_below(points, pf["objective"])
        budget = pf["seconds"] / TIME_FRACTION
        targets["reach_pastiche"] = {
            "pastiche_objective": pf["objective"],
            "pastiche_seconds": pf["seconds"],
            "budget_seconds": budget,
            "neuralens_seconds_to_reach": reach,
            "neuralens_best_objective": min((o for _, o in points), default=None),
            "speedup": None if reach is None else pf["seconds"] / reach,
            "pass": reach is not None and reach <= budget,
        }
        if nf:
            p_points = [(p["seconds"], p["objective"]) for p in r["pastiche_points"]]
            targets["pastiche_seconds_to_reach_neuralens"] = first_at_or_below(p_points, nf["objective"])
    if nf:
        targets["default_wall"] = {
            "seconds": nf["seconds"],
            "limit": DEFAULT_WALL_TARGET_S,
            "pass": nf["seconds"] <= DEFAULT_WALL_TARGET_S,
        }
    r["targets"] = targets


def _figures(r: Dict[str, Any], content: Path, out_dir: Path, smoke: bool) -> None:
    own = "" if r["pastiche_objective"] == "same" else f"_{r['pastiche_objective']}"
    stem = report_name(f"style_quality_{r['pair']}{own}", smoke)
    pf, nf = r.get("pastiche_final"), r.get("neuralens_final")
    if nf and not pf:
        strip = side_by_side(
            [Image.open(content), Image.open(nf["path"])],
            [
                "content",
                f"neuralens stylize\n{nf['seconds']:.0f} s, objective {nf['objective']:.3g}"
                + ("  (pastiche diverged: no image)" if r.get("pastiche_diverged_at") is not None else ""),
            ],
        )
        path = out_dir / f"{stem}.jpg"
        save_jpeg_under(strip, path)
        r["side_by_side"] = path.name
    if pf and nf:
        strip = side_by_side(
            [Image.open(content), Image.open(nf["path"]), Image.open(pf["path"])],
            [
                "content",
                f"neuralens stylize, {'defaults' if not r['neuralens_extra_args'] else 'smoke settings'}\n{nf['seconds']:.0f} s, objective {nf['objective']:.3g}",
                f"pastiche, {r['pastiche_steps']} L-BFGS steps"
                + (" (DIVERGED)" if r.get("pastiche_diverged_at") is not None else "")
                + f"\n{pf['seconds']:.0f} s, objective {pf['objective']:.3g}",
            ],
        )
        path = out_dir / f"{stem}.jpg"
        save_jpeg_under(strip, path)
        r["side_by_side"] = path.name
    series = [
        ("neuralens", (31, 119, 180), [(s["seconds"], s["objective"]) for s in r["neuralens_points"]]),
        (
            "pastiche",
            (214, 39, 40),
            [(s["seconds"], s["objective"]) for s in r["pastiche_points"] if not _after_divergence(r, s)],
        ),
    ]
    comparable = pf and r.get("pastiche_diverged_at") is None
    hlines = [(pf["objective"], f"pastiche after {r['pastiche_steps']} steps")] if comparable else []
    vlines = [(pf["seconds"] / TIME_FRACTION, f"1/{TIME_FRACTION} of pastiche's time")] if comparable else []
    plot = line_plot(
        series,
        f"{r['pair']} at {max(r['size'])} px: canonical objective vs time",
        "seconds since start",
        "objective, log scale",
        hlines=hlines,
        vlines=vlines,
    )
    r["plot"] = save_png(plot, out_dir / f"{stem}_plot.png").name


# -- the part ------------------------------------------------------------------------------------------------
def run(
    quick: bool = False,
    pairs: Optional[Sequence[str]] = None,
    size: Optional[int] = None,
    steps: Optional[int] = None,
    every: Optional[int] = None,
    neuralens_extra: Optional[Sequence[str]] = None,
    out_dir: Path = RESULTS,
    timeout_s: float = 3600,
    pastiche_objective: str = "same",
) -> Dict[str, Any]:
    """Run every pair and write style_quality(.md/.json) plus the figures. ``pastiche_objective`` "own"
    runs pastiche with its own default weights instead of the converted ones (reports then get an _own suffix)."""
    size = size or (384 if quick else 512)
    steps = steps or (10 if quick else REFERENCE_STEPS)
    every = every or (5 if quick else 10)
    if neuralens_extra is None:
        neuralens_extra = ["--iterations", "10", "--coarse-iterations", "10"] if quick else []
    curve_extra = [] if quick else ["--iterations", str(CURVE_ITERATIONS)]
    info = machine_info()
    results = [
        run_pair(
            p, size, steps, every, neuralens_extra, True, out_dir, quick, timeout_s, pastiche_objective, curve_extra
        )
        for p in (pairs or PAIRS)
    ]
    import os

    data = {
        "part": "style_quality",
        "machine": info,
        "size": size,
        "pastiche_steps": steps,
        "snapshot_every": every,
        "results": results,
        "end_load_average": [round(x, 2) for x in os.getloadavg()],
    }
    name = "style_quality" + ("" if pastiche_objective == "same" else f"_{pastiche_objective}")
    paths = write_report(
        out_dir,
        report_name(name, quick),
        "Style transfer: quality against time, neuralens and pastiche",
        _markdown(data),
        data,
        quick,
    )
    print(f"[quality] wrote {paths['markdown']}", file=sys.stderr)
    return data


def _after_divergence(r: Dict[str, Any], snapshot: Dict[str, Any]) -> bool:
    """Whether a pastiche snapshot was saved at or after the logged step where its loss was inf/NaN
    (its pixels are then garbage; the step is only known to the logging interval)."""
    step = r.get("pastiche_diverged_at")
    return step is not None and snapshot["step"] >= step


def _verdict(ok: Optional[bool]) -> str:
    return "–" if ok is None else ("**PASS**" if ok else "**FAIL**")


def _markdown(data: Dict[str, Any]) -> str:
    parts = [
        f"""## Machine

{machine_markdown(data["machine"])}
- Load average at end: {", ".join(str(x) for x in data["end_load_average"])}

## Method

Both programs get the same content and style PNGs, pre-resized (Lanczos) to {data["size"]} px on the long side, so
neither resizes them again; the same layers (content relu4_2 = pastiche `block4_relu2`; style relu1_1…relu5_1 =
`block{{1..5}}_relu1`); init from the content image; L-BFGS. pastiche runs {data["pastiche_steps"]} steps with its
layer weights converted so that it minimises the same objective (see `benchmarks/style_pastiche.py`):
style layer weight = β·w_l/4, content layer weight = α·N·M/2 (N = 512 channels, M = positions of relu4_2 at the
output size), content weight 1. neuralens runs `neuralens stylize` with its defaults
(plus any extra arguments listed per pair).

**Canonical objective** (the score of every image below): α·L_content + β·L_style with neuralens's own code in fp32,
NCHW, at the full output size — L_content = ½Σ(F−P)² on relu4_2, E_l = Σ(G−A)²/(4N²M²), w_l = 1/5, and α, β
read from `StyleOptions()` defaults at run time. Images are the 8-bit files the programs wrote. neuralens's
coarse-scale snapshots are smaller than the output and are scored after a bicubic upsampling to the output size
(marked "upsampled"). **Time** is seconds since the program's process was started (the snapshot file's
modification time), so start-up, model loading and snapshot saving count for both. The neuralens curve comes from a
second run with `--save-every {data["snapshot_every"]}` (a little slower than the plain run because of the saving)
and, at the reference settings, `--iterations {CURVE_ITERATIONS}` at the output size instead of the default 75, to
show what more time buys; the plain run gives the final image and the default wall time. pastiche saves every {data["snapshot_every"]} steps
(`--workspace-step`).
"""
    ]
    for r in data["results"]:
        parts.append(_pair_markdown(r))
    return "\n".join(parts)


def _pair_markdown(r: Dict[str, Any]) -> str:
    w, h = r["size"]
    lines = [f"## {r['pair']} ({w}×{h})", ""]
    lines.append(f"α = {r['alpha']:g}, β = {r['beta']:g}; pastiche `{' '.join(r['pastiche_args'])}`.")
    if r["pastiche_objective"] != "same":
        lines.append(
            "**pastiche ran with its own default layer weights**, i.e. it minimised a different balance of "
            "content and style than the canonical objective it is scored with: this is not the reference "
            "comparison."
        )
    if r["neuralens_extra_args"]:
        lines.append(f"neuralens extra arguments: `{' '.join(r['neuralens_extra_args'])}`.")
    if r.get("curve_extra_args"):
        lines.append(f"neuralens snapshot run: also `{' '.join(r['curve_extra_args'])}`.")
    c = r.get("conversion_check")
    if c:
        lines += [
            "",
            f"**Weight conversion check** on one image (the content plus Gaussian noise): canonical objective "
            f"{c['canonical']:.6g}, pastiche's own loss with the converted weights {c['pastiche']:.6g}, "
            f"relative difference {c['rel_diff']:.1e}.",
        ]
    t = r.get("targets", {})
    lines += ["", "### Targets", ""]
    if not t.get("reference_settings"):
        lines.append(
            "_Not at the reference settings (300 pastiche steps, 512 px, neuralens defaults): the verdicts "
            "below only show that the computation works._"
        )
        lines.append("")
    reach = t.get("reach_pastiche")
    if reach and reach.get("not_comparable"):
        lines.append(
            f"- Reach pastiche's final objective within 1/{TIME_FRACTION} of its time: **not comparable** — "
            f"{reach['not_comparable']}: its L-BFGS has no line search (step length 1, one evaluation per step) "
            "and a step went to infinity on this objective. See the pastiche table below."
        )
    elif reach:
        got = reach["neuralens_seconds_to_reach"]
        got_text = (
            f"neuralens reached it after {got:.1f} s ({reach['speedup']:.1f}× faster)"
            if got is not None
            else f"neuralens never reached it (its best: {reach['neuralens_best_objective']:.4g})"
        )
        lines.append(
            f"- Reach pastiche's final objective ({reach['pastiche_objective']:.4g} after "
            f"{r['pastiche_steps']} steps, {reach['pastiche_seconds']:.1f} s) within 1/{TIME_FRACTION} of its "
            f"time (≤ {reach['budget_seconds']:.1f} s): {got_text} — {_verdict(reach['pass'])}"
        )
    dw = t.get("default_wall")
    if dw:
        lines.append(
            f"- `neuralens stylize` finishes in ≤ {dw['limit']} s including start-up: {dw['seconds']:.1f} s — "
            f"{_verdict(dw['pass'])}"
        )
    if t.get("pastiche_seconds_to_reach_neuralens") is not None:
        lines.append(
            f"- pastiche reached neuralens's final objective after {t['pastiche_seconds_to_reach_neuralens']:.1f} s."
        )
    pf, nf = r.get("pastiche_final"), r.get("neuralens_final")
    rows = []
    if nf:
        rows.append(
            [
                "neuralens stylize (plain run)",
                nf["seconds"],
                nf["objective"],
                nf["content"],
                nf["style"],
                nf.get("evaluations"),
            ]
        )
    if pf:
        rows.append(
            [
                f"pastiche {r['pastiche_steps']} steps",
                pf["seconds"],
                pf["objective"],
                pf["content"],
                pf["style"],
                r["pastiche_steps"],
            ]
        )
    lines += [
        "",
        "### Final images",
        "",
        markdown_table(["program", "wall s", "objective", "L_content", "L_style", "evaluations / steps"], rows),
    ]
    for key, label in (
        ("pastiche_run", "pastiche"),
        ("neuralens_plain_run", "neuralens (plain)"),
        ("neuralens_snapshot_run", "neuralens (snapshots)"),
    ):
        run = r.get(key, {})
        if run.get("stopped_early"):
            lines += [
                "",
                f"**{label} was stopped by the harness** after {run['wall_s']:.0f} s because its loss "
                "became inf/NaN (it cannot recover from NaN).",
            ]
        elif run.get("returncode"):
            lines += [
                "",
                f"**{label} failed** (exit status {run['returncode']}):",
                "",
                "```",
                run.get("stderr_tail", ""),
                "```",
            ]
    if r.get("side_by_side"):
        lines += ["", f"![content, neuralens, pastiche]({r['side_by_side']})"]
    if r.get("plot"):
        lines += ["", f"![objective against time]({r['plot']})"]
    lines += [
        "",
        "### Objective against time",
        "",
        f"neuralens (snapshot run{', ' + ' '.join(r['curve_extra_args']) if r.get('curve_extra_args') else ''}):",
        "",
    ]
    lines.append(
        markdown_table(
            ["evaluation", "seconds", "objective", "L_content", "L_style", "note"],
            [
                [
                    s["iteration"],
                    s["seconds"],
                    s["objective"],
                    s["content"],
                    s["style"],
                    f"upsampled from {s['resized']}" if s.get("resized") else "",
                ]
                for s in r["neuralens_points"]
            ],
        )
    )
    lines += ["", "pastiche:", ""]
    lines.append(
        markdown_table(
            [
                "step",
                "seconds",
                "objective",
                "L_content",
                "L_style",
                "pastiche's logged loss (of the image before this step, unrounded)",
                "note",
            ],
            [
                [
                    s["step"],
                    s["seconds"],
                    s["objective"],
                    s["content"],
                    s["style"],
                    s["pastiche_loss"],
                    "diverged (NaN pixels saved)" if _after_divergence(r, s) else "",
                ]
                for s in r["pastiche_points"]
            ],
        )
    )
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--pairs", nargs="+", choices=sorted(PAIRS))
    p.add_argument("--size", type=int)
    p.add_argument("--pastiche-steps", type=int)
    p.add_argument("--every", type=int)
    p.add_argument("--pastiche-objective", choices=("same", "own"), default="same")
    args = p.parse_args(argv)
    run(args.quick, args.pairs, args.size, args.pastiche_steps, args.every, pastiche_objective=args.pastiche_objective)
    return 0


if __name__ == "__main__":
    sys.exit(main())
