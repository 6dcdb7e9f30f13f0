"""Feed-forward style quality: each style model's outputs on photos it was not trained on, scored with the
canonical Gatys objective (content relu4_2, Gram style relu1_1...relu5_1, ``style_pastiche.CanonicalObjective``:
the score the quality benchmark gives every image) next to the optimisation-based `neuralens stylize` result for
the same photo and painting, with side-by-side sheets (photo | fast | optimised) to look at.

    python -m benchmarks.fast_quality [--models starry-night the-scream ...] [--photos data/photos/holdout]
                                      [--size 384] [--fresh] [--out results/]

Per model, the painting is the one it was trained on (its training info names the file; it is looked up in
``../shared/data/style``). Per photo, content and painting are resized to ``--size`` (long side) once and both
engines get those files: the fast model stylizes the content (``StyleModel.stylize``, timed after a warm-up),
`neuralens stylize` runs with its default settings (wall time of the process, start-up included). The
optimised images depend only on the photo, the painting and the size, so they are kept in the work folder and
reused by later runs (``--fresh`` remakes them). The unstylized photo is scored too: a model that changed
nothing would score that. Report: ``fast_quality.md`` / ``.json`` and ``fast_quality_<model>.jpg``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .style_common import (
    RESULTS,
    ROOT,
    WORK,
    json_safe,
    machine_info,
    machine_markdown,
    markdown_table,
)
from .style_pastiche import CanonicalObjective
from .style_quality import run_neuralens

STYLES = ROOT.parent / "shared" / "data" / "style"
DEFAULT_MODELS = ("starry-night", "the-scream", "woman-with-hat", "shipwreck")


def painting_of(model_info: Dict[str, Any]) -> Path:
    """The painting file a model was trained on, from its training info (the file name is looked up in
    ``../shared/data/style`` when the recorded path is not there)."""
    info = model_info.get("info") or {}
    recorded = info.get("style") or info.get("painting") or (model_info.get("report") or {}).get("style")
    if not recorded:
        raise SystemExit(f"error: {model_info['name']}: its training info names no painting")
    path = Path(recorded)
    for candidate in (path, ROOT / path, STYLES / path.name):
        if candidate.is_file():
            return candidate
    raise SystemExit(f"error: {model_info['name']}: painting {recorded} not found (looked in {STYLES})")


def prepare(photo: Path, painting: Path, size: int) -> Dict[str, Path]:
    """content.png and style.png at long side ``size`` in a work folder named by photo, painting and size."""
    from neuralens.imageio import load_image, resize_long_side

    folder = WORK / "fast_quality" / f"{photo.stem}__{painting.stem}_{size}"
    folder.mkdir(parents=True, exist_ok=True)
    files = {"folder": folder, "content": folder / "content.png", "style": folder / "style.png"}
    if not files["content"].is_file():
        resize_long_side(load_image(photo), size).save(files["content"])
    if not files["style"].is_file():
        resize_long_side(load_image(painting), size).save(files["style"])
    return files


def optimised(files: Dict[str, Path], size: int, fresh: bool, timeout_s: float) -> Dict[str, Any]:
    """`neuralens stylize` with default settings on the prepared pair (kept and reused unless ``fresh``)."""
    out = files["folder"] / "optimised.png"
    record = files["folder"] / "optimised.run.json"
    if out.is_file() and record.is_file() and not fresh:
        return json.loads(record.read_text())
    m, report, _ = run_neuralens(
        files["content"], files["style"], files["folder"], "optimised", size, [], None, timeout_s
    )
    if m.returncode != 0:
        raise SystemExit(f"error: neuralens stylize failed on {files['folder'].name}: {m.tail(3)}")
    data = {
        "path": str(out),
        "wall_s": m.wall_s,
        "peak_rss_mib": m.max_rss_mib,
        "evaluations": report.get("iterations"),
    }
    record.write_text(json.dumps(json_safe(data), indent=1) + "\n")
    return data


def main(argv: Optional[Sequence[str]] = None) -> int:
    from neuralens.fast import load_model, model_info
    from neuralens.imageio import find_images, load_image, save_image
    from neuralens.visualize.sheets import contact_sheet

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    p.add_argument("--photos", type=Path, default=ROOT / "data" / "photos" / "holdout")
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--fresh", action="store_true", help="remake the optimised images")
    p.add_argument(
        "--paintings",
        nargs="+",
        type=Path,
        help="with --only-optimised: the paintings to prepare (default: those of --models)",
    )
    p.add_argument(
        "--only-optimised",
        action="store_true",
        help="make (and keep) the optimised images only, for a later run to reuse",
    )
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed per optimisation run")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    photos = find_images(args.photos)
    if not photos:
        raise SystemExit(f"error: no photos in {args.photos} (run scripts/gather_photos.py -o data/photos --holdout 4)")
    if args.only_optimised:
        paintings = args.paintings or [painting_of(model_info(name)) for name in args.models]
        for painting in paintings:
            for photo in photos:
                opt = optimised(prepare(photo, painting, args.size), args.size, args.fresh, args.timeout)
                print(f"{painting.name} {photo.name}: {opt['wall_s']:.0f} s", file=sys.stderr, flush=True)
        return 0
    load_start = [round(x, 2) for x in os.getloadavg()]
    results: List[Dict[str, Any]] = []
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        about = model_info(name)
        painting = painting_of(about)
        model = load_model(name, device="cpu")
        name = Path(name).stem  # a model file is reported (and its sheet named) by its file name
        tiles, captions = [], []
        for photo in photos:
            files = prepare(photo, painting, args.size)
            canonical = CanonicalObjective(files["content"], files["style"])
            content = load_image(files["content"])
            model.stylize(content)  # warm-up (and the onnxruntime export, the first time)
            started = time.perf_counter()
            fast_image = model.stylize(content)
            fast_s = time.perf_counter() - started
            fast_path = files["folder"] / f"fast_{name}.png"
            save_image(fast_image, fast_path)
            opt = optimised(files, args.size, args.fresh, args.timeout)
            row = {
                "model": name,
                "painting": painting.name,
                "photo": photo.name,
                "size": list(content.size),
                "photo_score": canonical.score(files["content"]),
                "fast": dict(canonical.score(fast_path), seconds=fast_s, path=str(fast_path)),
                "optimised": dict(canonical.score(opt["path"]), **opt),
            }
            results.append(row)
            print(
                f"{name} {photo.name}: objective photo {row['photo_score']['objective']:.3g}, fast "
                f"{row['fast']['objective']:.3g}, optimised {row['optimised']['objective']:.3g}",
                file=sys.stderr,
                flush=True,
            )
            tiles += [content, fast_image, load_image(opt["path"])]
            captions += [
                f"{photo.name}\nobjective {row['photo_score']['objective']:.3g}",
                f"{name} ({fast_s * 1000:.0f} ms)\nobjective {row['fast']['objective']:.3g}",
                f"neuralens stylize ({opt['wall_s']:.0f} s)\nobjective {row['optimised']['objective']:.3g}",
            ]
        sheet = contact_sheet(
            tiles, captions, columns=3, title=f"{name} ({painting.name}): photo | fast model | optimisation"
        )
        save_image(sheet.convert("RGB"), args.out / f"fast_quality_{name}.jpg")
    load_end = [round(x, 2) for x in os.getloadavg()]
    table = []
    for r in results:
        table.append(
            [
                r["model"],
                r["photo"],
                r["photo_score"]["objective"],
                r["fast"]["objective"],
                r["optimised"]["objective"],
                r["fast"]["objective"] / r["optimised"]["objective"],
                r["fast"]["style"] / r["optimised"]["style"],
                r["fast"]["seconds"] * 1000,
                r["optimised"]["wall_s"],
            ]
        )
    body = (
        f"Canonical objective (alpha * content + beta * style, neuralens's default weights) at {args.size} px long "
        f"side; photos from {args.photos} (held out of training); load average {load_start} at start, {load_end} at "
        "end.\n\n"
        + markdown_table(
            [
                "model",
                "photo",
                "photo objective",
                "fast objective",
                "optimised objective",
                "fast / optimised",
                "style loss fast / optimised",
                "fast ms",
                "optimised s",
            ],
            table,
        )
        + "\n\n"
        + machine_markdown(machine_info())
        + "\n"
    )
    (args.out / "fast_quality.md").write_text("# Feed-forward style: quality on held-out photos\n\n" + body)
    data = {"size": args.size, "results": results, "load_average": [load_start, load_end], "machine": machine_info()}
    (args.out / "fast_quality.json").write_text(json.dumps(json_safe(data), indent=1) + "\n")
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
