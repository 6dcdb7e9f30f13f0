"""Stylizing a video: decode -> paint each frame with temporal consistency -> encode, resumable.

    from neuralens import video
    result = video.stylize("clip.mp4", "out.mp4", model="starry-night")              # a trained model
    result = video.stylize("clip.mp4", "out.mp4", styles=["starry_night.jpg"], size=320)  # optimisation
    for image in video.stylize_frames(frames, model="the-scream"):                   # any frames, as PIL images
        ...

Every finished frame is kept as a PNG in a work folder beside the output (``OUTPUT.neuralens-work/``) before it is
encoded: Ctrl-C (or ``should_stop``) closes the output as a playable partial video, and ``resume=True`` later
reuses the finished frames instead of painting them again (the settings must be the same; ``run.json`` in the
folder says which). The folder is removed after a complete run unless ``keep_frames``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np
from PIL import Image

from .. import __version__
from ..errors import NeuralensError
from ..fast.apply import ApplyOptions
from ..imageio import ImageLike
from ..progress import Progress
from ..style.options import StyleOptions
from .consistency import FlowBlend, Independent, RuderTemporal, Temporal
from .engines import ArbitraryEngine, ModelEngine, OptimisationEngine, to_uint8
from .flow import FlowEstimator
from .io import FRAME_NAME, Frame, VideoInfo, VideoWriter, check_output, frame_size, probe, read_frames
from .options import VideoOptions
from .pipeline import Background, prefetch
from .plan import plan

WORK_SUFFIX = ".neuralens-work"
WORK_FORMAT = "neuralens-video-work"


@dataclass
class VideoResult:
    """What a video run did and wrote."""

    output: Path
    frames: int  # frames in the output
    painted: int  # frames painted in this run (the others were reused from the work folder)
    reused: int
    size: List[int]  # [width, height]
    fps: float
    seconds: float
    frames_per_second: float  # frames in the output per second of this run (end to end)
    stopped: bool = False  # interrupted: the output holds the frames finished so far
    audio: Optional[str] = None  # 'copied', 're-encoded to X' or None
    engine: Dict[str, Any] = field(default_factory=dict)
    consistency: Dict[str, Any] = field(default_factory=dict)
    flow: Dict[str, float] = field(default_factory=dict)  # flows computed / taken from the cache, seconds
    work_folder: Optional[Path] = None  # kept after an interruption (or with keep_frames)
    input: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["output"] = str(self.output)
        out["work_folder"] = str(self.work_folder) if self.work_folder else None
        return out


# -- engines --------------------------------------------------------------------------------------------------
def build_engine(
    styles: Sequence[ImageLike],
    model: Optional[str],
    fast: bool,
    style_options: StyleOptions,
    apply: ApplyOptions,
    size: tuple,
    video: VideoOptions,
):
    """The engine for the request: a model (``model``), the arbitrary network (``styles`` with ``fast``) or
    optimisation (``styles``). NeuralensError for an impossible combination."""
    styles = list(styles or [])
    if model is not None and (styles or fast):
        raise NeuralensError("give STYLE (optimisation, or --fast) or --model, not both")
    if model is not None:  # colour, device and precision are set once, in the style options
        return ModelEngine(
            dataclasses.replace(
                apply,
                model=model,
                size=None,
                preserve_color=style_options.preserve_color,
                device=style_options.device,
                precision=style_options.precision,
            )
        )
    if not styles:
        raise NeuralensError("no style given: STYLE image(s), STYLE --fast, or --model NAME|PATH")
    if fast:
        return ArbitraryEngine(
            styles,
            apply.strength,
            style_options.preserve_color,
            style_options.style_blend,
            style_options.device,
            style_options.precision,
        )
    return OptimisationEngine(styles, style_options, size, video.frame_iterations)


def build_temporal(engine, video: VideoOptions, flows: Optional[FlowEstimator] = None) -> Temporal:
    """How frames are tied together for ``engine`` (see consistency.py)."""
    if video.consistency == "none":
        return Independent(engine)
    flows = flows or FlowEstimator(video.flow_preset)
    if isinstance(engine, OptimisationEngine):
        return RuderTemporal(engine, flows, video.loss_weight(), video.long_term)
    return FlowBlend(engine, flows, video.blend_weight())


def _options(cls, given, fields: Dict[str, Any]):
    names = {f.name for f in dataclasses.fields(cls)}
    mine = {k: fields.pop(k) for k in list(fields) if k in names}
    return dataclasses.replace(given or cls(), **mine)


def split_options(
    options: Optional[VideoOptions] = None,
    style_options: Optional[StyleOptions] = None,
    apply: Optional[ApplyOptions] = None,
    **fields: Any,
):
    """(VideoOptions, StyleOptions, ApplyOptions) with ``fields`` given to whichever has them (VideoOptions first:
    ``size`` is the video's). NeuralensError for an unknown field."""
    video = _options(VideoOptions, options, fields)
    style = _options(StyleOptions, style_options, fields)
    applied = _options(ApplyOptions, apply, fields)
    if fields:
        raise NeuralensError(f"unknown option(s): {', '.join(sorted(fields))}")
    return video.validate(), style, applied


# -- the work folder -------------------------------------------------------------------------------------------
class WorkFolder:
    """Finished frames of one output (PNG, lossless), with ``run.json`` saying what they were made with."""

    def __init__(self, output: Path, fingerprint: Dict[str, Any], resume: bool):
        self.path = output.parent / f"{output.name}{WORK_SUFFIX}"
        self.fingerprint = json.loads(json.dumps(fingerprint, default=str))
        self.reusable = 0
        meta = self.path / "run.json"
        if resume and meta.is_file():
            try:
                saved = json.loads(meta.read_text())
            except (OSError, ValueError):
                saved = None
            if not isinstance(saved, dict) or saved.get("settings") != self.fingerprint:
                raise NeuralensError(
                    f"{self.path}: made with other settings or another input; run without --resume to start over"
                )
            while (self.path / FRAME_NAME.format(self.reusable)).is_file():
                self.reusable += 1
        else:
            self.clear()
        self.path.mkdir(exist_ok=True)
        meta.write_text(json.dumps({"format": WORK_FORMAT, "neuralens": __version__, "settings": self.fingerprint}))

    def load(self, index: int) -> Optional[np.ndarray]:
        """Finished frame ``index`` (H, W, 3) uint8, or None when it has to be painted."""
        if index >= self.reusable:
            return None
        try:
            with Image.open(self.path / FRAME_NAME.format(index)) as image:
                return np.asarray(image.convert("RGB"))
        except OSError:
            self.reusable = index
            return None

    def save(self, index: int, rgb: np.ndarray) -> None:
        """Keep frame ``index`` (written to a temporary name first: a frame file is never half-written)."""
        final = self.path / FRAME_NAME.format(index)
        tmp = final.with_name(f".{final.name}.tmp")
        Image.fromarray(rgb).save(tmp, format="PNG", compress_level=1)  # level 1: 3x faster, 10 % larger
        os.replace(tmp, final)

    def clear(self) -> None:
        """Remove the folder (only the files this class writes; anything else in it stays, with the folder)."""
        if not self.path.is_dir():
            return
        for item in self.path.iterdir():
            if item.name == "run.json" or (item.suffix in (".png", ".tmp") and item.name.lstrip(".")[:1].isdigit()):
                item.unlink()
        try:
            self.path.rmdir()
        except OSError:
            pass


def _fingerprint(
    info: VideoInfo, size: tuple, engine, temporal: Temporal, video: VideoOptions, fps: Fraction
) -> Dict[str, Any]:
    try:
        stat = info.path.stat()
        source = {"path": str(info.path.resolve()), "bytes": stat.st_size, "mtime": stat.st_mtime}
    except OSError:
        source = {"path": str(info.path)}
    if info.kind == "frames":
        source["files"] = len(info.files)
    return {
        "input": source,
        "size": list(size),
        "start": video.start,
        "end": video.end,
        "fps": str(fps),
        "engine": engine.to_dict(),
        "consistency": temporal.to_dict(),
        "flow_preset": video.flow_preset,
    }


# -- the run -----------------------------------------------------------------------------------------------------
def stylize(
    input: Union[str, os.PathLike],
    output: Union[str, os.PathLike],
    styles: Optional[Sequence[ImageLike]] = None,
    model: Optional[str] = None,
    fast: bool = False,
    options: Optional[VideoOptions] = None,
    style_options: Optional[StyleOptions] = None,
    apply: Optional[ApplyOptions] = None,
    callback: Optional[Callable[[int, int, np.ndarray], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    on_step: Optional[Callable[[int, Any], None]] = None,
    **fields: Any,
) -> VideoResult:
    """Paint the video (or folder of frames) ``input`` and write ``output`` (.mp4, .mov, .mkv, .webm, .avi, .gif
    or a folder). The engine: ``model`` (a trained model's name or file), ``styles`` with ``fast`` (the
    arbitrary-style network) or ``styles`` alone (optimisation). ``options``/``style_options``/``apply`` hold the
    video's, the optimisation's and the model's settings; ``fields`` set any of their fields by name (``size=320,
    consistency='none', style_weight=1e4, strength=0.8``). ``callback(index, total, rgb)`` after each frame;
    ``should_stop()`` returning True (or Ctrl-C) stops with a playable partial output; ``on_step(index, step)``
    after each loss evaluation of the optimisation engine (a ``Step``: iteration, total_iterations, losses).
    Returns a VideoResult; raises NeuralensError (one line) for bad input before any work."""
    started = time.perf_counter()
    video, style, applied = split_options(options, style_options, apply, **fields)
    run = plan(input, video)
    info, size, fps = run.info, run.size, run.fps
    output = check_output(output)
    if info.kind == "video" and Path(output).resolve() == info.path.resolve():
        raise NeuralensError(f"{output}: is the input; choose another output name")
    frames = read_frames(info, *size, video.start, video.end, video.fps if info.kind == "video" else None)
    first = next(frames)  # before anything is built or written: an empty range is refused here
    engine = build_engine(styles or [], model, fast, style, applied, size, video)
    temporal = build_temporal(engine, video)
    work = WorkFolder(output, _fingerprint(info, size, engine, temporal, video, fps), video.resume)
    total = run.frames
    writer = VideoWriter(output, *size, fps, info if video.audio else None, video.start)
    progress = Progress(total, "video", unit="frame", enabled=video.progress)
    painted = reused = 0
    stopped = False

    def frames_with_first() -> Iterator[Frame]:
        yield first
        yield from frames

    # Decoding runs ahead and encoding + keeping the frame behind, each in a thread of its own (pipeline.py);
    # the frames keep their order.
    decoded = prefetch(frames_with_first())
    behind = Background("neuralens-video-encode")

    def finish(index: int, rgb: np.ndarray, save: bool) -> None:
        if save:
            work.save(index, rgb)
        writer.write(rgb)

    try:
        for frame in decoded:
            done = work.load(frame.index)
            fresh = done is None
            if not fresh:
                temporal.keep(frame.rgb, done.astype(np.float32) / 255.0)
                reused += 1
            else:
                if isinstance(engine, OptimisationEngine):

                    def step_done(step, i: int = frame.index) -> None:
                        progress.update(0, f"frame {i + 1}: evaluation {step.iteration}/{step.total_iterations}")
                        if on_step is not None:
                            on_step(i, step)

                    temporal.on_step = step_done
                result = temporal.next(frame.rgb)
                done = to_uint8(result)
                if temporal.past and temporal.past[-1].output is result:
                    temporal.past[-1].output = done.astype(np.float32) / 255.0  # what a resumed run will see
                painted += 1
            behind.submit(finish, frame.index, done, fresh)
            if total and frame.index + 1 > total:
                total = frame.index + 1
                progress.set_total(total)
            rate = (frame.index + 1) / max(progress.elapsed(), 1e-9)
            progress.update(1, f"{rate:.1f} frames/s")
            if callback is not None:
                callback(frame.index, total, done)
            if should_stop is not None and should_stop():
                stopped = True
                break
    except KeyboardInterrupt:
        stopped = True
    finally:
        decoded.close()
        try:
            behind.close()  # every painted frame is encoded and kept before the output is closed
        finally:
            progress.set_total(writer.frames if not stopped else total)
            progress.close()
            if writer.frames:
                writer.close()
            else:
                writer.discard()
    if not stopped and not video.keep_frames:
        work.clear()
    seconds = time.perf_counter() - started
    flows = getattr(temporal.flows, "stats", None) or {}
    return VideoResult(
        output=Path(output),
        frames=writer.frames,
        painted=painted,
        reused=reused,
        size=list(size),
        fps=float(fps),
        seconds=seconds,
        frames_per_second=writer.frames / seconds if seconds > 0 else 0.0,
        stopped=stopped,
        audio=writer.audio,
        engine=engine.to_dict(),
        consistency=temporal.to_dict(),
        flow=dict(flows),
        work_folder=work.path if work.path.is_dir() else None,
        input=info.to_dict(),
    )


# -- frames in, frames out ---------------------------------------------------------------------------------------
def read_video(
    input: Union[str, os.PathLike],
    size: Optional[int] = None,
    start: float = 0.0,
    end: Optional[float] = None,
    fps: Optional[float] = None,
) -> Iterator[np.ndarray]:
    """The frames of a video (or folder of frames) as (H, W, 3) uint8 RGB arrays, scaled so the long side is at
    most ``size``, between ``start`` and ``end`` seconds, resampled to ``fps`` when given."""
    info = probe(input, fps)
    width, height = frame_size(info.width, info.height, size)
    for frame in read_frames(info, width, height, start, end, fps if info.kind == "video" else None):
        yield frame.rgb


def stylize_frames(
    frames: Iterable[Union[np.ndarray, Image.Image]],
    styles: Optional[Sequence[ImageLike]] = None,
    model: Optional[str] = None,
    fast: bool = False,
    options: Optional[VideoOptions] = None,
    style_options: Optional[StyleOptions] = None,
    apply: Optional[ApplyOptions] = None,
    **fields: Any,
) -> Iterator[Image.Image]:
    """Paint a stream of frames (uint8 (H, W, 3) arrays or PIL images, all of one size) with the same temporal
    consistency as ``stylize`` (flow computed as the frames come; nothing is written) and yield each result as a
    PIL image. The engine and ``fields`` as for ``stylize`` (``size``/``start``/``end``/``fps`` do not apply)."""
    video, style, applied = split_options(options, style_options, apply, **fields)
    engine = temporal = shape = None
    for item in frames:
        rgb = np.asarray(item.convert("RGB")) if isinstance(item, Image.Image) else np.ascontiguousarray(item)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise NeuralensError(f"frames must be (H, W, 3) uint8 RGB, got {rgb.dtype} {rgb.shape}")
        if engine is None:
            shape = rgb.shape
            engine = build_engine(styles or [], model, fast, style, applied, (rgb.shape[1], rgb.shape[0]), video)
            temporal = build_temporal(engine, video)
        elif rgb.shape != shape:
            raise NeuralensError(f"every frame must have the first one's size {shape[1]}x{shape[0]}")
        done = to_uint8(temporal.next(rgb))
        if temporal.past:
            temporal.past[-1].output = done.astype(np.float32) / 255.0
        yield Image.fromarray(done)
