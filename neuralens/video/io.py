"""Video in and out through PyAV (FFmpeg is bundled in its wheels): probe a video, decode its frames at a chosen
size, time range and frame rate, and encode stylized frames with the input's audio track carried over.

Inputs: any container/codec FFmpeg decodes (mp4, mov, mkv, webm, avi, gif, ...) or a folder of numbered image
frames. Outputs by extension: .mp4/.m4v/.mov/.mkv (H.264), .webm (VP9), .avi (MPEG-4), .gif (Pillow's adaptive
palette: FFmpeg's own GIF encoder needs a palette swscale cannot make), or a folder (numbered PNG frames).
A video is written to a temporary file beside the output and renamed when closed, so an existing output is
replaced only by a complete, playable file - also after Ctrl-C, when it holds the frames finished so far.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator, List, Optional, Tuple, Union

import numpy as np
from PIL import Image

from ..errors import NeuralensError
from ..imageio import find_images, is_image_name, load_image

PathLike = Union[str, os.PathLike]

# Output container (FFmpeg's name), video codec, pixel format, encoder options. H.264 at CRF 18 is visually
# lossless for stylized frames; 'veryfast' encodes a 640x480 frame in about 3 ms on the 2-core CPU.
VIDEO_FORMATS = {
    ".mp4": ("mp4", "libx264", {"crf": "18", "preset": "veryfast"}),
    ".m4v": ("mp4", "libx264", {"crf": "18", "preset": "veryfast"}),
    ".mov": ("mov", "libx264", {"crf": "18", "preset": "veryfast"}),
    ".mkv": ("matroska", "libx264", {"crf": "18", "preset": "veryfast"}),
    ".webm": ("webm", "libvpx-vp9", {"crf": "30", "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"}),
    ".avi": ("avi", "mpeg4", {"qscale": "3"}),
}
GIF_SUFFIX = ".gif"
OUTPUT_SUFFIXES = tuple(sorted(VIDEO_FORMATS)) + (GIF_SUFFIX,)
# Audio codecs each container takes as they are (copied packet by packet); others are re-encoded to AUDIO_ENCODER.
AUDIO_COPY = {
    "mp4": {"aac", "mp3", "alac", "opus", "flac", "ac3", "eac3"},
    "mov": {"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    "matroska": None,  # anything
    "webm": {"opus", "vorbis"},
    "avi": {"mp3", "ac3", "pcm_s16le"},
}
AUDIO_ENCODER = {"mp4": "aac", "mov": "aac", "matroska": "aac", "webm": "libopus", "avi": "libmp3lame"}
FOLDER_FPS = 25.0  # frame rate of a folder of frames unless --fps says otherwise
FRAME_NAME = "{:06d}.png"


@dataclass
class VideoInfo:
    """What a video input is: its frame size and rate, duration, codecs, and the estimated number of frames.
    ``kind`` is 'video' (a file FFmpeg reads) or 'frames' (a folder of numbered images)."""

    path: Path
    kind: str
    width: int
    height: int
    fps: Fraction
    duration: float  # seconds
    frames: int  # estimated for containers that do not store it
    codec: str
    audio: Optional[str] = None  # the audio codec, or None without an audio track
    files: List[Path] = field(default_factory=list, repr=False)  # the frames of a folder

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "width": self.width,
            "height": self.height,
            "fps": float(self.fps),
            "duration": self.duration,
            "frames": self.frames,
            "codec": self.codec,
            "audio": self.audio,
        }


def _av():
    import av  # noqa: PLC0415 -- PyAV loads FFmpeg's libraries: only when a video is touched

    return av


def _natural_key(path: Path) -> Tuple:
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name))


def rate_of(fps: float) -> Fraction:
    """A frame rate as an exact fraction (29.97 -> 30000/1001)."""
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise NeuralensError(f"frame rate must be > 0, got {fps}")
    return rate


def probe(path: PathLike, fps: Optional[float] = None) -> VideoInfo:
    """Open a video file or a folder of frames and describe it (no frame is decoded except to check a folder's
    first image). ``fps`` is the rate of a folder of frames (default FOLDER_FPS). Raises NeuralensError (one
    line) for a missing file, a file that is not a video, a video without frames or with a codec this FFmpeg
    cannot decode."""
    path = Path(path)
    if not path.exists():
        raise NeuralensError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(find_images(path), key=_natural_key)
        first = load_image(files[0])
        rate = rate_of(fps or FOLDER_FPS)
        return VideoInfo(
            path, "frames", first.width, first.height, rate, len(files) / float(rate), len(files), "images", None, files
        )
    if is_image_name(path) and path.suffix.lower() != GIF_SUFFIX:
        raise NeuralensError(f"{path}: is a still image, not a video (neuralens stylize paints images)")
    av = _av()
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise NeuralensError(f"{path}: not a video file ({_reason(exc)})") from None
    with container:
        if container.format.name == "image2" or container.format.name.endswith("_pipe"):
            # FFmpeg's still-image readers (png_pipe, jpeg_pipe, ...): a picture whatever the file is called.
            raise NeuralensError(f"{path}: is a still image, not a video (neuralens stylize paints images)")
        if not container.streams.video:
            raise NeuralensError(f"{path}: has no video frames (no video track)")
        stream = container.streams.video[0]
        context = stream.codec_context  # None when FFmpeg does not know the codec at all
        codec = context.codec.name if context is not None and context.codec else None
        if codec is None or not _can_decode(codec):
            name = f" '{codec}'" if codec else ""
            raise NeuralensError(f"{path}: unsupported video codec{name} (the bundled FFmpeg cannot decode it)")
        width, height = context.width, context.height
        if not width or not height:
            raise NeuralensError(f"{path}: the video track has no frames (size 0x0)")
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = 0.0
        frames = stream.frames or max(0, round(duration * float(rate)))
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return VideoInfo(path, "video", width, height, Fraction(rate), duration, frames, codec, audio)


def _can_decode(codec: str) -> bool:
    av = _av()
    try:
        av.codec.Codec(codec, "r")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False
    return True


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(":")[0].strip() or type(exc).__name__


def frame_size(width: int, height: int, size: Optional[int]) -> Tuple[int, int]:
    """(width, height) of the processed frames: the long side at most ``size`` (None: as it is; frames are never
    enlarged), both rounded to even numbers (4:2:0 video stores colour per 2x2 block)."""
    scale = 1.0 if size is None else min(1.0, size / max(width, height))
    w, h = max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)
    return w, h


@dataclass
class Frame:
    """One frame of the selection: its number in the output (0-based), its time in the input (seconds) and its
    pixels (H, W, 3) uint8 RGB."""

    index: int
    time: float
    rgb: np.ndarray


def read_frames(
    info: VideoInfo,
    width: int,
    height: int,
    start: float = 0.0,
    end: Optional[float] = None,
    fps: Optional[float] = None,
) -> Iterator[Frame]:
    """The frames between ``start`` and ``end`` seconds scaled to width x height. With ``fps`` the frames are
    resampled to that rate (each output instant takes the input frame nearest to it); without, every input
    frame in the range is kept. Raises NeuralensError when the range holds no frame."""
    end = math.inf if end is None else end
    decoded = _decode_folder(info, width, height) if info.kind == "frames" else _decode(info, width, height, start)
    chosen = _select(decoded, start, end, fps, float(info.fps))
    count = 0
    for index, (time, rgb) in enumerate(chosen):
        count += 1
        yield Frame(index, time, rgb)
    if count == 0:
        what = "the video" if start <= 0 and end == math.inf else f"the range {start:g} s to {end:g} s"
        raise NeuralensError(f"{info.path}: no frames in {what}")


def _decode(info: VideoInfo, width: int, height: int, start: float) -> Iterator[Tuple[float, np.ndarray]]:
    av = _av()
    with av.open(str(info.path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: decoding stays a few percent of the time
        if start > 0 and stream.time_base:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        index = 0
        try:
            for frame in container.decode(stream):
                time = frame.time if frame.time is not None else index / float(info.fps)
                index += 1
                if frame.width != width or frame.height != height:
                    frame = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
                yield time, frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as exc:
            if index == 0:
                raise NeuralensError(f"{info.path}: cannot decode the video ({_reason(exc)})") from None
            # A damaged tail: keep what decoded (FFmpeg's own tools do the same).


def _decode_folder(info: VideoInfo, width: int, height: int) -> Iterator[Tuple[float, np.ndarray]]:
    for index, path in enumerate(info.files):
        image = load_image(path)
        if image.size != (width, height):
            image = image.resize((width, height), Image.LANCZOS)
        yield index / float(info.fps), np.asarray(image)


def _select(
    decoded: Iterator[Tuple[float, np.ndarray]], start: float, end: float, fps: Optional[float], input_fps: float
) -> Iterator[Tuple[float, np.ndarray]]:
    """Keep the frames in [start, end); with ``fps``, one frame per 1/fps seconds (the input frame nearest)."""
    eps = 0.25 / input_fps  # timestamps are rounded to the container's time base
    if fps is None:
        for time, rgb in decoded:
            if time < start - eps:
                continue
            if time >= end - eps:
                return
            yield time, rgb
        return
    step = 1.0 / fps
    k, previous = 0, None
    for time, rgb in decoded:
        if previous is not None:
            middle = (previous[0] + time) / 2
            while start + k * step < min(middle, end):
                if start + k * step >= previous[0] - 0.5 / input_fps:
                    yield start + k * step, previous[1]
                k += 1
        if time >= end:
            return
        previous = (time, rgb)
    if previous is not None:  # the last frame lasts one input frame interval
        while start + k * step < min(previous[0] + 1.0 / input_fps, end) - 1e-9:
            if start + k * step >= previous[0] - 0.5 / input_fps:
                yield start + k * step, previous[1]
            k += 1


# -- writing -------------------------------------------------------------------------------------------------
def output_kind(path: PathLike) -> str:
    """'video', 'gif' or 'frames' (a folder: no extension, or an existing folder) for an output path."""
    path = Path(path)
    if path.is_dir() or (path.suffix == "" and not path.exists()):
        return "frames"
    suffix = path.suffix.lower()
    if suffix == GIF_SUFFIX:
        return "gif"
    if suffix in VIDEO_FORMATS:
        return "video"
    known = ", ".join(OUTPUT_SUFFIXES)
    raise NeuralensError(f"{path}: unknown video format '{path.suffix}' (use one of {known}, or a folder for frames)")


def check_output(path: PathLike) -> Path:
    """Check before any work that the output can be written: a known format in a folder that exists and takes new
    files (a missing folder is an error, not created: a typo should not scatter files). Returns the path."""
    path = Path(path)
    kind = output_kind(path)
    folder = path.parent if kind != "frames" else (path if path.is_dir() else path.parent)
    if not folder.is_dir():
        raise NeuralensError(f"{path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise NeuralensError(f"{path}: cannot write in {folder} (permission denied)")
    return path


class VideoWriter:
    """Encodes frames (H, W, 3) uint8 RGB at ``fps`` into ``path`` (a video file, a GIF or a folder of PNG frames),
    copying the audio of ``audio_from`` between ``start`` and the end of the written video. Use as a context
    manager or call ``close()``: the file is complete and playable after it, however many frames were written."""

    def __init__(
        self,
        path: PathLike,
        width: int,
        height: int,
        fps: Fraction,
        audio_from: Optional[VideoInfo] = None,
        start: float = 0.0,
    ):
        self.path = Path(path)
        self.kind = output_kind(self.path)
        self.width, self.height, self.fps = width, height, Fraction(fps)
        self.frames = 0
        self.audio: Optional[str] = None  # 'copied' or 're-encoded to X' once audio is written
        self._closed = False
        self._gif: List[Image.Image] = []
        self._container = None
        self._audio = None
        if self.kind == "frames":
            self.path.mkdir(exist_ok=True)
            return
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        if self.kind == "video":
            self._open_video(audio_from, start)

    def _open_video(self, audio_from: Optional[VideoInfo], start: float) -> None:
        av = _av()
        container_format, codec, options = VIDEO_FORMATS[self.path.suffix.lower()]
        self._container = av.open(str(self._tmp), "w", format=container_format)
        stream = self._container.add_stream(codec, rate=self.fps, options=dict(options))
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.codec_context.time_base = 1 / self.fps
        self._stream = stream
        if audio_from is not None and audio_from.kind == "video" and audio_from.audio:
            self._audio = AudioCopy(audio_from.path, self._container, container_format, start)
            self.audio = self._audio.mode

    def write(self, rgb: np.ndarray) -> None:
        """Append one frame (H, W, 3) uint8 RGB of the writer's size."""
        if rgb.shape != (self.height, self.width, 3):
            raise ValueError(f"frame of shape {rgb.shape}, expected {(self.height, self.width, 3)}")
        if self.kind == "frames":
            Image.fromarray(rgb).save(self.path / FRAME_NAME.format(self.frames + 1), compress_level=1)
        elif self.kind == "gif":
            # An adaptive palette per frame (Pillow's fast octree) keeps the painting's colours.
            self._gif.append(Image.fromarray(rgb).quantize(256, method=Image.Quantize.FASTOCTREE))
        else:
            av = _av()
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = self.frames
            frame.time_base = 1 / self.fps
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            if self._audio is not None:
                self._audio.pump(self._container, (self.frames + 1) / float(self.fps))
        self.frames += 1

    def close(self) -> Path:
        """Finish the file (flush the encoder, the audio up to the video's end) and move it into place. Safe to
        call twice. Returns the output path."""
        if self._closed:
            return self.path
        self._closed = True
        if self.kind == "frames":
            return self.path
        try:
            if self.kind == "gif":
                self._write_gif()
            else:
                for packet in self._stream.encode():
                    self._container.mux(packet)
                if self._audio is not None:
                    self._audio.pump(self._container, self.frames / float(self.fps), final=True)
                self._container.close()
            os.chmod(self._tmp, 0o666 & ~_umask())
            os.replace(self._tmp, self.path)
        finally:
            if self._audio is not None:
                self._audio.close()
            if self._tmp.exists():
                self._tmp.unlink()
        return self.path

    def _write_gif(self) -> None:
        if not self._gif:
            return
        duration = max(20, round(1000 / float(self.fps)))  # GIF delays are in 1/100 s; browsers clamp below 20 ms
        with open(self._tmp, "wb") as handle:
            self._gif[0].save(
                handle, format="GIF", save_all=True, append_images=self._gif[1:], duration=duration, loop=0
            )

    def discard(self) -> None:
        """Drop the file being written (nothing is moved into place)."""
        self._closed = True
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 -- the file is thrown away anyway
                pass
        if self._audio is not None:
            self._audio.close()
        if self.kind != "frames" and self._tmp.exists():
            self._tmp.unlink()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None and self.frames == 0:
            self.discard()
        else:
            self.close()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class AudioCopy:
    """The input's audio track from ``start`` on, written into an output container as the video grows: packets
    copied as they are when the container takes the codec, else decoded and re-encoded."""

    def __init__(self, source: Path, container, container_format: str, start: float):
        av = _av()
        self.input = av.open(str(source))
        self.source = self.input.streams.audio[0]
        self.start = start
        codec = self.source.codec_context.name
        allowed = AUDIO_COPY.get(container_format)
        self.copy = allowed is None or codec in allowed
        if self.copy:
            self.stream = container.add_stream_from_template(self.source)
            self.mode = "copied"
        else:
            rate = self.source.codec_context.sample_rate or 48000
            encoder = AUDIO_ENCODER[container_format]
            if encoder == "libopus":
                rate = 48000  # Opus runs at 48 kHz only
            self.stream = container.add_stream(encoder, rate=rate)
            self.stream.codec_context.layout = "stereo" if self.source.codec_context.channels > 1 else "mono"
            self.resampler = av.AudioResampler(
                format=self.stream.codec_context.format, layout=self.stream.codec_context.layout, rate=rate
            )
            self.fifo = av.AudioFifo()
            self.samples = 0
            self.mode = f"re-encoded to {encoder}"
        if start > 0 and self.source.time_base:
            self.input.seek(int(start / self.source.time_base), stream=self.source, backward=True)
        self.packets = self.input.demux(self.source)
        self.pending = None
        self.done = False

    def pump(self, container, until: float, final: bool = False) -> None:
        """Write the audio up to ``until`` seconds of the output (all that is left of it up to there with ``final``)."""
        av = _av()
        while not self.done:
            packet = self.pending or next(self.packets, None)
            self.pending = None
            if packet is None:
                self.done = True
                break
            if packet.pts is None or packet.size == 0:
                continue
            tb = packet.time_base
            begins = float(packet.pts * tb) - self.start
            ends = begins + float((packet.duration or 0) * tb)
            if ends <= 0 and packet.duration:
                continue  # before --start
            if begins >= until:
                self.pending = packet
                break
            if self.copy:
                packet.pts -= round(self.start / tb)
                packet.dts = packet.pts if packet.dts is None else packet.dts - round(self.start / tb)
                packet.stream = self.stream
                container.mux(packet)
            else:
                try:
                    for frame in packet.decode():
                        self._encode(container, frame)
                except av.error.FFmpegError:
                    continue  # one damaged audio packet: skip it
        if final and not self.copy:
            self._encode(container, None, until)

    def _encode(self, container, frame, until: Optional[float] = None) -> None:
        codec = self.stream.codec_context
        if frame is not None:
            frame.pts = None
            for out in self.resampler.resample(frame):
                self.fifo.write(out)
        size = codec.frame_size or 1024
        while self.fifo.samples >= size or (until is not None and self.fifo.samples > 0):
            limit = None if until is None else round(until * codec.sample_rate) - self.samples
            if limit is not None and limit <= 0:
                break
            chunk = self.fifo.read(min(size, self.fifo.samples) if until is not None else size)
            if chunk is None:
                break
            chunk.pts = self.samples
            self.samples += chunk.samples
            for packet in self.stream.encode(chunk):
                container.mux(packet)
        if until is not None:
            for packet in self.stream.encode(None):
                container.mux(packet)

    def close(self) -> None:
        self.input.close()
