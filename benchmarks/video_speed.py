"""Video speed: where a frame's time goes in `neuralens video --model` and the frames per second end to end, this
checkout against an earlier one in the same run, with the flicker measures checked on the way.

    python -m benchmarks.video_speed [--baseline REV] [--frames 48] [--repeats 3] [--no-640] [--quick] [--out DIR]

1. **Stages**, one after another on the 320x240 pan clip of benchmarks/video_flicker.py, in a child process per
   checkout (each with its own library): decoding, the two DIS flows (the frame towards the previous one and back),
   the reliability mask, the warp of the previous result (Lanczos) and its feathered mask, the network (the
   onnxruntime engine), keeping the frame as a PNG in the work folder, encoding. Median milliseconds per frame.
   Beside it, one onnxruntime pass with the session's idle threads spinning (onnxruntime's default) and sleeping
   (what neuralens sets).
2. **End to end**: `neuralens video CLIP --model starry-night -o OUT` (flow, the defaults) as a child process per
   run, for this checkout and for ``--baseline`` (a copy of that commit's package made with `git archive`, run from
   its folder), interleaved so that both see the same load; frames/s from the run's report (frames / seconds of
   ``video.stylize``: probe, model load, decode, flow, stylize, encode; not the interpreter's start-up). Median of
   ``--repeats`` runs, every run listed. 320x240 pan and object clips, 640x480 pan.
3. **Flicker**: each checkout's first flow output and one `--consistency none` output per clip, decoded, measured
   as in video_flicker (warping error with the true flow, style loss): a faster pipeline must not flicker more.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .style_common import (
    RESULTS,
    ROOT,
    WORK,
    image_path,
    json_safe,
    machine_info,
    machine_markdown,
    markdown_table,
    run_measured,
)
from .style_common import python as our_python
from .video_flicker import MODEL, MODEL_PAINTING, StyleMeter, decoded, make_clips, measure, run_ours


def stage_profile(clip: Path, preset: str = "medium") -> Dict[str, float]:
    """Median milliseconds per frame of each stage of the feed-forward flow pipeline, run one after another."""
    import cv2
    from PIL import Image

    from neuralens.fast.apply import ApplyOptions
    from neuralens.video import io as vio
    from neuralens.video.consistency import feather
    from neuralens.video.engines import ModelEngine, to_float
    from neuralens.video.flow import FlowEstimator, warp

    times: Dict[str, List[float]] = {}

    def timed(name: str, fn, *args):
        started = time.perf_counter()
        value = fn(*args)
        times.setdefault(name, []).append(1000 * (time.perf_counter() - started))
        return value

    info = vio.probe(clip)
    frames = []
    source = vio.read_frames(info, info.width, info.height)
    while True:
        started = time.perf_counter()
        frame = next(source, None)
        if frame is None:
            break
        times.setdefault("decode", []).append(1000 * (time.perf_counter() - started))
        frames.append(frame.rgb)
    engine = ModelEngine(ApplyOptions(model=MODEL))
    dis = FlowEstimator(preset)._dis
    previous = engine.stylize(frames[0])  # the first pass also builds the onnxruntime session: not counted
    folder = Path(tempfile.mkdtemp(prefix="neuralens-stages-"))
    writer = vio.VideoWriter(folder / "out.mp4", info.width, info.height, info.fps)
    for index in range(1, len(frames)):
        rgb, before = frames[index], frames[index - 1]
        grey, grey_before = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.cvtColor(before, cv2.COLOR_RGB2GRAY)
        backward = timed("DIS flow, frame to previous", dis.calc, grey, grey_before, None)
        forward = timed("DIS flow, previous to frame", dis.calc, grey_before, grey, None)
        mask = timed("reliability mask (forward-backward, photometric)", _mask, rgb, before, backward, forward)
        warped = timed("warp previous result (Lanczos)", warp, previous, backward, True)
        keep = timed("feathered mask", feather, mask)[..., None]
        styled = timed("network (onnxruntime)", engine.stylize, rgb)
        done = timed("carry + blend + to uint8", _carry, keep, warped, styled)
        timed("keep the frame (PNG, work folder)", _keep, done, folder / "frame.png")
        timed("encode (H.264)", writer.write, done)
        previous = to_float(Image.fromarray(done))
    writer.close()
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    return {name: float(np.median(values)) for name, values in times.items()}


def spinning_check(runs: int = 30) -> Dict[str, float]:
    """Median milliseconds of one 320x240 onnxruntime pass of the model, followed by the flow's arithmetic as in a
    video run, with the session's idle threads spinning (onnxruntime's default) and sleeping (neuralens's)."""
    import onnxruntime
    import torch

    from neuralens.fast import load_model, runtime

    path = runtime.exported_file(load_model(MODEL).network)
    image = np.random.default_rng(0).random((1, 3, 240, 320), dtype=np.float32)
    flow = np.random.default_rng(1).random((240, 320, 2), dtype=np.float32)
    out = {}
    for spinning in ("1", "0"):
        settings = onnxruntime.SessionOptions()
        settings.intra_op_num_threads = torch.get_num_threads()
        settings.log_severity_level = 3
        settings.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        session = onnxruntime.InferenceSession(str(path), settings, providers=["CPUExecutionProvider"])
        session.run(None, {"image": image})
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            session.run(None, {"image": image})
            times.append(1000 * (time.perf_counter() - started))
            np.gradient(flow[..., 0])  # what runs next in a video: the flow thread's numpy work
        out["spinning" if spinning == "1" else "sleeping"] = float(np.median(times))
    return out


def stages_of(clip: Path, cwd: Optional[Path]) -> Dict[str, float]:
    """``stage_profile`` of ``clip`` in a child process run in ``cwd`` (a checkout's folder: its neuralens is the
    one imported; this benchmark module comes from this checkout)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), NEURALENS_FLOW_CACHE="off")
    done = run_measured([our_python(), "-m", "benchmarks.video_speed", "--stages", str(clip)], cwd=cwd, env=env)
    if done.returncode != 0:
        raise SystemExit(f"error: the stage profile failed in {cwd or ROOT}: {done.tail(3)}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _mask(rgb: np.ndarray, before: np.ndarray, backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    from neuralens.video.flow import photometric_mask, reliable_mask, warp

    return (reliable_mask(backward, forward) * photometric_mask(rgb, warp(before, backward))).astype(np.float32)


def _carry(keep: np.ndarray, warped: np.ndarray, styled: np.ndarray) -> np.ndarray:
    from neuralens.video.engines import to_uint8

    return to_uint8(keep * warped + (1.0 - keep) * styled)


def _keep(rgb: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(rgb).save(path, format="PNG", compress_level=1)


def baseline_checkout(revision: str, folder: Path) -> Path:
    """The package of commit ``revision`` extracted into ``folder`` (git archive: the repository is not touched).
    Returns the folder (run ``-m neuralens`` there to use that version)."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "neuralens"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tempfile.TemporaryFile() as handle:
        handle.write(archive)
        handle.seek(0)
        with tarfile.open(fileobj=handle) as tar:
            tar.extractall(folder, filter="data")
    return folder


def commit_of(revision: str) -> str:
    return subprocess.run(["git", "rev-parse", revision], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def benchmark(out: Path, baseline: Optional[str], frames: int, repeats: int, big: bool, quick: bool) -> Dict[str, Any]:
    work = WORK / "video_speed"
    work.mkdir(parents=True, exist_ok=True)
    load_start = [round(x, 2) for x in os.getloadavg()]
    clips = make_clips(work, frames)
    checkouts: Dict[str, Optional[Path]] = {"this checkout": None}
    if baseline:
        checkouts[f"baseline {baseline}"] = baseline_checkout(baseline, work / "baseline")
    print("stages", file=sys.stderr, flush=True)
    stages = {label: stages_of(clips["pan"]["path"], cwd) for label, cwd in checkouts.items()}
    spinning = spinning_check()
    runs: Dict[str, Dict[str, List[float]]] = {}
    sizes = [("320x240", name, clip["path"]) for name, clip in clips.items()]
    if big:
        (work / "640").mkdir(exist_ok=True)
        large = make_clips(work / "640", max(12, frames // 2), (640, 480))
        sizes.append(("640x480", "pan", large["pan"]["path"]))
    meter = StyleMeter(image_path("style", MODEL_PAINTING), 320)
    flicker: Dict[str, Dict[str, Any]] = {}
    for repeat in range(repeats):
        for size, name, path in sizes:
            for label, cwd in checkouts.items():
                print(f"run {repeat + 1}/{repeats}: {size} {name}, {label}", file=sys.stderr, flush=True)
                tag = f"{size}_{name}_{label.split()[0]}"
                output = work / f"{tag}.mp4"
                run = run_ours(path, output, ["--model", MODEL], cwd=cwd)
                runs.setdefault(f"{size} {name}", {}).setdefault(label, []).append(run["frames_per_second"])
                if repeat == 0 and size == "320x240":
                    clip = clips[name]
                    dis = _dis_fields(clip["path"])
                    flicker.setdefault(name, {})[f"{label}: flow"] = measure(
                        decoded(output), clip["fields"], dis, meter
                    )
                    if label == "this checkout":
                        none = work / f"{tag}_none.mp4"
                        run_ours(path, none, ["--model", MODEL, "--consistency", "none"], cwd=cwd)
                        flicker[name]["none"] = measure(decoded(none), clip["fields"], dis, meter)
    data = {
        "frames": frames,
        "repeats": repeats,
        "model": MODEL,
        "baseline": {"revision": baseline, "commit": commit_of(baseline)} if baseline else None,
        "commit": commit_of("HEAD"),
        "stages_ms": stages,
        "onnxruntime_idle_threads_ms": spinning,
        "frames_per_second": runs,
        "flicker": flicker,
        "load_average_start": load_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "machine": machine_info(),
    }
    write(out, data, quick)
    return data


def _dis_fields(path: Path):
    from neuralens.video.metrics import input_flows

    return input_flows(decoded(path))


def write(out: Path, data: Dict[str, Any], quick: bool) -> None:
    name = "video_flicker_speed_smoke" if quick else "video_flicker_speed"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(json_safe(data), indent=1, allow_nan=False) + "\n")
    lines = ["# Video speed: the feed-forward engine with flow, stage by stage and end to end\n"]
    lines.append(
        f"Model `{data['model']}`, the clips of benchmarks/video_flicker.py ({data['frames']} frames, 24 fps, "
        f"audio). Commit `{data['commit'][:10]}`"
        + (f" against baseline `{data['baseline']['commit'][:10]}`" if data["baseline"] else "")
        + ".\n"
    )
    lines.append("\n## Stages one after another, 320x240 pan (ms per frame, median)\n")
    profiles = data["stages_ms"]
    labels = list(profiles)
    rows = [[stage, *(f"{profiles[label].get(stage, 0):.1f}" for label in labels)] for stage in profiles[labels[0]]]
    totals = [sum(profiles[label].values()) for label in labels]
    rows.append(["sum (frames/s if nothing overlapped)", *(f"{t:.1f} ({1000 / t:.1f})" for t in totals)])
    lines.append(markdown_table(["stage", *labels], rows))
    spin = data["onnxruntime_idle_threads_ms"]
    lines.append(
        f"\nOne onnxruntime pass of the network at 320x240 (then a little numpy work, as in a video run): "
        f"{spin['spinning']:.1f} ms with the session's idle threads spinning (onnxruntime's default), "
        f"{spin['sleeping']:.1f} ms with them sleeping (neuralens/fast/runtime.py).\n"
    )
    lines.append(
        f"\n## End to end: `neuralens video CLIP --model {data['model']} -o OUT` (frames/s, median of "
        f"{data['repeats']}, interleaved)\n"
    )
    labels = list(next(iter(data["frames_per_second"].values())))
    rows = []
    for clip, by_label in data["frames_per_second"].items():
        row = [clip]
        for label in labels:
            values = by_label.get(label, [])
            row.append(f"{statistics.median(values):.1f} ({', '.join(f'{v:.1f}' for v in values)})" if values else "")
        rows.append(row)
    lines.append(markdown_table(["clip", *labels], rows))
    lines.append("\n## Flicker (warping error with the true flow, 320x240): the faster pipeline keeps it\n")
    rows = []
    for clip, by_run in data["flicker"].items():
        none = by_run.get("none")
        for label, row in by_run.items():
            ratio = row["warping_error_true_flow"] / none["warping_error_true_flow"] if none else None
            change = 100 * (row["style_loss"] / none["style_loss"] - 1) if none else None
            rows.append(
                [
                    clip,
                    label,
                    f"{row['warping_error_true_flow']:.5f}",
                    f"{ratio:.2f}" if ratio is not None else "",
                    f"{change:+.1f} %" if change is not None else "",
                ]
            )
    lines.append(markdown_table(["clip", "run", "E_warp (true flow)", "× none", "style vs none"], rows))
    lines.append(
        f"\nLoad average at start {data['load_average_start']}, at end {data['load_average_end']}.\n\n"
        + machine_markdown(data["machine"])
    )
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.video_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", default=None, help="a git revision to compare with (e.g. HEAD~3)")
    p.add_argument("--frames", type=int, default=48, help="frames per clip (default %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each configuration (default %(default)s)")
    p.add_argument("--no-640", action="store_true", help="skip the 640x480 clip")
    p.add_argument("--quick", action="store_true", help="smoke run: 12 frames, one repeat, reports *_smoke")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the reports (default %(default)s)")
    p.add_argument("--stages", type=Path, default=None, help=argparse.SUPPRESS)  # the child: profile one clip
    args = p.parse_args(argv)
    if args.stages is not None:
        print(json.dumps(stage_profile(args.stages)))
        return 0
    if args.quick:
        args.frames, args.repeats = 12, 1
    started = time.perf_counter()
    benchmark(args.out, args.baseline, args.frames, args.repeats, not args.no_640, args.quick)
    print(f"done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
