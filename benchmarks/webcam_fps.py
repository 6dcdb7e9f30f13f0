"""Webcam: frames per second a local `neuralens serve` achieves on its WebSocket (/ws/webcam), measured by a
client that does what the page does: 320x240 JPEG frames, at most two in flight (a new frame as soon as an
answer is in).

    python -m benchmarks.webcam_fps [--model starry-night | --painting-sample starry_night.jpg]
                                    [--seconds 20] [--in-flight 2] [--size 320x240] [--device cpu]
                                    [--cpus 0,1] [--name webcam_fps] [--out DIR]

The server is a child process (`python -m neuralens serve --port 0`, started and stopped here; `--cpus` pins
it and this client with ``taskset`` where the machine has more cores than the 2 of the target). Frames are
encoded once beforehand (a sample photo panned across 24 positions, so JPEG sizes vary as a camera's do) and
the client only sends and receives, so nearly all the CPU goes to the server. The first 2 s are warm-up and not
counted. Reported: achieved frames/s (answers over the measured time), the server's own time per stage of a
frame from its answers (decode, model, encode, waiting for the model), the round trip, frames dropped, and
the load average at start and end. Report: ``<name>.md`` / ``.json`` in ``--out`` (default results/).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .style_common import RESULTS, ROOT, image_path, json_safe, machine_info, machine_markdown, markdown_table

TARGET_FPS = 10.0  # issue 12: >= 10 frames/s at 320x240 with a built-in model on 2 cores
WARMUP_SECONDS = 2.0
POSITIONS = 24


def make_frames(width: int, height: int) -> List[bytes]:
    """JPEG frames (quality 80, as the page sends) of the Tübingen photo, panned across ``POSITIONS`` crops."""
    from PIL import Image

    photo = Image.open(image_path("content", "tubingen")).convert("RGB")
    scale = 1.25 * max(width / photo.width, height / photo.height)
    photo = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.LANCZOS)
    frames = []
    for k in range(POSITIONS):
        x = round((photo.width - width) * k / (POSITIONS - 1))
        y = round((photo.height - height) * (0.5 + 0.4 * ((k % 6) / 5 - 0.5)))
        buffer = io.BytesIO()
        photo.crop((x, y, x + width, y + height)).save(buffer, format="JPEG", quality=80)
        frames.append(buffer.getvalue())
    return frames


def start_server(device: str, cpus: Optional[str]) -> tuple:
    """`neuralens serve --port 0` in a child process; returns (process, base ws URL) once it listens."""
    command = [sys.executable, "-m", "neuralens", "serve", "--port", "0", "--device", device]
    if cpus and shutil.which("taskset"):
        command = ["taskset", "-c", cpus, *command]
    env = {k: v for k, v in os.environ.items() if k != "NEURALENS_TOKEN"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)
    deadline = time.monotonic() + 120
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        match = re.search(r"serving at http://(\S+)/", line)
        if match:
            return process, f"ws://{match.group(1)}"
    process.kill()
    raise SystemExit("the server did not start:\n" + "".join(seen))


def stream(url: str, frames: List[bytes], seconds: float, in_flight: int) -> Dict[str, Any]:
    """Send frames over one connection for ``seconds`` (plus warm-up), at most ``in_flight`` unanswered;
    return the answers' metadata and the client's timings."""
    from websockets.sync.client import connect

    answers, trips, errors = [], [], []
    sent_at: Dict[int, float] = {}
    with connect(url, max_size=2**24, open_timeout=60) as ws:
        ready = json.loads(ws.recv())
        if ready.get("type") != "ready":
            raise SystemExit(f"the server refused the stream: {ready}")
        number = 0

        def send() -> None:
            nonlocal number
            number += 1
            sent_at[number] = time.perf_counter()
            ws.send(frames[number % len(frames)])

        for _ in range(in_flight):
            send()
        start = time.perf_counter()
        measured_from, measured = None, 0
        meta = None
        while True:
            message = ws.recv(timeout=120)
            if isinstance(message, str):
                data = json.loads(message)
                if data["type"] == "frame":
                    meta = data
                    continue
                if data["type"] == "error":
                    errors.append(data)
                    if "frame" not in data:
                        continue
                    if len(errors) > 20:
                        raise SystemExit(f"the server answers errors: {errors[-1]}")
            else:
                now = time.perf_counter()
                trips.append(now - sent_at.pop(meta["frame"], now))
                if measured_from is None and now - start >= WARMUP_SECONDS:
                    measured_from, first_meta = now, meta
                elif measured_from is not None:
                    measured += 1
                    answers.append(meta)
                if measured_from is not None and now - measured_from >= seconds:
                    break
            send()
        elapsed = time.perf_counter() - measured_from
    return {
        "answers": answers,
        "first": first_meta,
        "elapsed_s": elapsed,
        "fps": measured / elapsed,
        "round_trip_s": trips[len(trips) - len(answers) :],
        "errors": errors,
        "sent": number,
    }


def breakdown(frames: List[bytes], model_name: str, device: str, runs: int = 30) -> Dict[str, float]:
    """Where a frame's time goes, measured in this process with the server stopped: median milliseconds of
    each step the server takes for a frame with built-in model ``model_name``."""
    import torch

    from neuralens.fast import load_model
    from neuralens.imageio import image_to_tensor, load_image, tensor_to_image
    from neuralens.web.live import encode
    from neuralens.web.uploads import decode_image

    model = load_model(model_name, device=device)
    steps: Dict[str, List[float]] = {k: [] for k in ("decode", "to_tensor", "network", "to_image", "encode", "stylize")}
    for k in range(runs + 3):
        data = frames[k % len(frames)]
        t0 = time.perf_counter()
        image = load_image(decode_image(data, "frame", 10**8))
        t1 = time.perf_counter()
        x = image_to_tensor(image)
        t2 = time.perf_counter()
        y = model.stylize_tensor(x)
        t3 = time.perf_counter()
        out = tensor_to_image(y)
        t4 = time.perf_counter()
        encode(out, "jpeg", 80)
        t5 = time.perf_counter()
        model.stylize(image)
        t6 = time.perf_counter()
        if k < 3:  # warm-up
            continue
        for name, seconds in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
            steps[name].append(seconds * 1000)
    out = {name: statistics.median(values) for name, values in steps.items()}
    out.update(
        precision=getattr(model, "_precision", None),
        engine=getattr(model, "engine_in_use", "torch"),
        network_name=f"{getattr(model.network, 'architecture', 'johnson')} width {model.network.width}",
        threads=torch.get_num_threads(),
    )
    return out


def summarise(result: Dict[str, Any]) -> Dict[str, Any]:
    """Medians per stage (milliseconds) and the counters over the measured window."""
    answers = result["answers"]
    stages = {}
    for stage in ("decode", "model", "render", "encode", "wait"):
        values = [a["seconds"][stage] * 1000 for a in answers if stage in a["seconds"]]
        stages[stage] = statistics.median(values) if values else None
    last, first = answers[-1], result["first"]
    trips = [t * 1000 for t in result["round_trip_s"]]
    server_ms = stages["decode"] + stages["render"] + stages["encode"]
    return {
        "fps": result["fps"],
        "frames": len(answers),
        "elapsed_s": result["elapsed_s"],
        "median_ms": stages,
        "server_ms_per_frame": server_ms,
        "frame_interval_ms": 1000 / result["fps"],
        "round_trip_ms": statistics.median(trips) if trips else None,
        "dropped": last["dropped"] - first["dropped"],
        "errors": len(result["errors"]),
        "server_fps": last.get("fps"),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    style = p.add_mutually_exclusive_group()
    style.add_argument("--model", default="starry-night", help="a built-in model (default %(default)s)")
    style.add_argument("--painting-sample", help="a bundled painting through the arbitrary-style engine instead")
    p.add_argument("--seconds", type=float, default=20.0, help="measured time after the warm-up (default 20)")
    p.add_argument("--in-flight", type=int, default=2, help="frames sent ahead of the answers (default 2, as the page)")
    p.add_argument("--size", default="320x240", help="frame size WxH (default %(default)s)")
    p.add_argument("--device", default="cpu", help="the server's --device (default %(default)s)")
    p.add_argument(
        "--cpus", help="pin server and client to these CPUs with taskset, e.g. 0,1 (2 cores of a larger machine)"
    )
    p.add_argument("--no-breakdown", action="store_true", help="skip the per-step timing in this process")
    p.add_argument("--name", default="webcam_fps", help="report file stem (default %(default)s)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    width, height = (int(v) for v in args.size.lower().split("x"))
    frames = make_frames(width, height)
    query = f"painting_sample={args.painting_sample}" if args.painting_sample else f"model={args.model}"
    what = f"painting {args.painting_sample} (arbitrary engine)" if args.painting_sample else f"model {args.model}"
    load_start = [round(x, 2) for x in os.getloadavg()]
    machine = machine_info()
    process, base = start_server(args.device, args.cpus)
    try:
        result = stream(f"{base}/ws/webcam?{query}", frames, args.seconds, args.in_flight)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    steps = None
    if not args.painting_sample and not args.no_breakdown:
        steps = breakdown(frames, args.model, args.device)
    load_end = [round(x, 2) for x in os.getloadavg()]
    summary = summarise(result)
    stages = summary["median_ms"]
    verdict = "met" if summary["fps"] >= TARGET_FPS else "NOT met"
    rows = [
        ["achieved frames/s", summary["fps"]],
        ["frames answered (measured window)", summary["frames"]],
        ["frames dropped by the server", summary["dropped"]],
        ["round trip, median ms", summary["round_trip_ms"]],
        ["frame interval ms (1000 / fps)", summary["frame_interval_ms"]],
        ["server: decode JPEG, median ms", stages["decode"]],
        ["server: model (stylize), median ms", stages["model"]],
        ["server: render incl. tensor conversions, median ms", stages["render"]],
        ["server: encode JPEG, median ms", stages["encode"]],
        ["server: waiting for the model lock, median ms", stages["wait"]],
    ]
    cpus = f"pinned to CPUs {args.cpus}" if args.cpus else f"{os.cpu_count()} CPUs"
    body = (
        f"{what}, {width}x{height} JPEG frames, {args.in_flight} in flight, {args.seconds:g} s measured after "
        f"{WARMUP_SECONDS:g} s of warm-up, server `--device {args.device}`, {cpus}; load average {load_start} at "
        f"start, {load_end} at end.\n\n**Target ≥ {TARGET_FPS:g} frames/s: {verdict}** "
        f"({summary['fps']:.1f} frames/s).\n\n" + markdown_table(["measure", "value"], rows) + "\n\n"
        "The model's share of a frame is model / frame interval; the rest is decoding, encoding, the tensor "
        "conversions around the network and the WebSocket.\n\n"
    )
    if steps is not None:
        step_rows = [
            ["decode JPEG (PIL) + RGB check", steps["decode"]],
            ["image -> tensor", steps["to_tensor"]],
            [
                f"network forward ({steps['network_name']}, {steps['engine']}, {steps['precision']}, "
                f"{steps['threads']} torch threads)",
                steps["network"],
            ],
            ["tensor -> image", steps["to_image"]],
            ["encode JPEG (quality 80)", steps["encode"]],
            ["StyleModel.stylize as the server calls it", steps["stylize"]],
        ]
        body += (
            "Where the time goes, step by step in one process with the server stopped (median ms, 30 frames):\n\n"
            + markdown_table(["step", "ms"], step_rows)
            + f"\n\nAt this rate the network alone allows {1000 / steps['network']:.1f} frames/s.\n\n"
        )
    body += machine_markdown(machine) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text("# Webcam: frames per second over the WebSocket\n\n" + body)
    data = {
        "style": what,
        "frame_size": [width, height],
        "in_flight": args.in_flight,
        "seconds": args.seconds,
        "device": args.device,
        "cpus": args.cpus,
        "target_fps": TARGET_FPS,
        "summary": summary,
        "steps_ms": steps,
        "load_average": [load_start, load_end],
        "machine": machine,
    }
    (args.out / f"{args.name}.json").write_text(json.dumps(json_safe(data), indent=1) + "\n")
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
