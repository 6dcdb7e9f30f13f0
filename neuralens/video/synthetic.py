"""Reproducible test clips with their exact motion, made from still photos: a camera pan (a sliding crop) and an
object moving over a still background (a pasted patch). With whole-pixel motion the true flow and occlusion mask
of every frame pair are known exactly, so the warping error can be measured without trusting any flow
estimator (tests and benchmarks/video_flicker.py)."""

from __future__ import annotations

import os
from fractions import Fraction
from typing import List, Optional, Tuple, Union

import numpy as np
from PIL import Image

from .flow import FlowField


def _array(image: Union[Image.Image, np.ndarray]) -> np.ndarray:
    return np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else np.asarray(image, dtype=np.uint8)


def pan_clip(
    photo: Union[Image.Image, np.ndarray], size: Tuple[int, int], frames: int, step: Tuple[int, int] = (3, 1)
) -> Tuple[List[np.ndarray], List[FlowField]]:
    """A camera pan over ``photo``: ``frames`` crops of ``size`` (width, height), each ``step`` (dx, dy) whole
    pixels further. Returns the frames (uint8) and the true flow of each frame towards the next (the content moves
    by -step; pixels whose match leaves the frame are masked out). The photo must be large enough."""
    src = _array(photo)
    (w, h), (dx, dy) = size, step
    x0, y0 = (0 if dx >= 0 else -dx * (frames - 1)), (0 if dy >= 0 else -dy * (frames - 1))
    need_w, need_h = x0 + w + max(dx, 0) * (frames - 1), y0 + h + max(dy, 0) * (frames - 1)
    if src.shape[1] < need_w or src.shape[0] < need_h:
        raise ValueError(f"photo of {src.shape[1]}x{src.shape[0]} is too small for this pan ({need_w}x{need_h})")
    clip = [
        np.ascontiguousarray(src[y0 + t * dy : y0 + t * dy + h, x0 + t * dx : x0 + t * dx + w]) for t in range(frames)
    ]
    flow = np.empty((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = -dx, -dy
    ys, xs = np.mgrid[0:h, 0:w]
    mask = ((xs - dx >= 0) & (xs - dx < w) & (ys - dy >= 0) & (ys - dy < h)).astype(np.float32)
    return clip, [FlowField(flow, mask) for _ in range(frames - 1)]


def object_clip(
    background: Union[Image.Image, np.ndarray],
    thing: Union[Image.Image, np.ndarray],
    frames: int,
    start: Tuple[int, int] = (4, 8),
    step: Tuple[int, int] = (4, 1),
) -> Tuple[List[np.ndarray], List[FlowField]]:
    """An object (``thing``, a smaller picture) moving ``step`` (dx, dy) whole pixels a frame over a still
    ``background``, from ``start`` (x, y). Returns the frames and the true flow of each towards the next: the
    object's pixels move by ``step``; background pixels stay, masked out where the object covers them next."""
    bg, obj = _array(background), _array(thing)
    h, w = bg.shape[:2]
    oh, ow = obj.shape[:2]
    clip, fields = [], []
    ys, xs = np.mgrid[0:h, 0:w]

    def region(t: int) -> np.ndarray:
        x, y = start[0] + t * step[0], start[1] + t * step[1]
        return (xs >= x) & (xs < x + ow) & (ys >= y) & (ys < y + oh)

    for t in range(frames):
        frame = bg.copy()
        x, y = start[0] + t * step[0], start[1] + t * step[1]
        x_a, y_a, x_b, y_b = max(x, 0), max(y, 0), min(x + ow, w), min(y + oh, h)
        if x_b > x_a and y_b > y_a:
            frame[y_a:y_b, x_a:x_b] = obj[y_a - y : y_b - y, x_a - x : x_b - x]
        clip.append(frame)
    for t in range(frames - 1):
        here, there = region(t), region(t + 1)
        flow = np.zeros((h, w, 2), np.float32)
        flow[here, 0], flow[here, 1] = step
        tx, ty = xs + flow[..., 0], ys + flow[..., 1]
        inside = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
        mask = (here | ~there) & inside
        fields.append(FlowField(flow, mask.astype(np.float32)))
    return clip, fields


def write_clip(
    path: Union[str, os.PathLike],
    frames: List[np.ndarray],
    fps: float = 25,
    audio_hz: Optional[float] = None,
    codec: str = "libx264",
    options: Optional[dict] = None,
) -> None:
    """Encode ``frames`` (uint8 RGB, even sizes) as a video file with PyAV (``options``: the encoder's, e.g.
    {'crf': '12'}); ``audio_hz``: add a stereo sine tone of that pitch (AAC, 44.1 kHz) as long as the video."""
    import av  # noqa: PLC0415

    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=rate, options=dict(options or {}))
        video.width, video.height, video.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        audio = out.add_stream("aac", rate=44100) if audio_hz else None
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            frame.time_base = 1 / rate
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is not None:
            samples = int(44100 * len(frames) / float(rate))
            tone = (0.3 * np.sin(2 * np.pi * audio_hz * np.arange(samples) / 44100)).astype(np.float32)
            for begin in range(0, samples, 1024):
                chunk = np.zeros(1024, np.float32)
                part = tone[begin : begin + 1024]
                chunk[: len(part)] = part
                frame = av.AudioFrame.from_ndarray(np.stack([chunk, chunk]), format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = 44100, begin
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)
