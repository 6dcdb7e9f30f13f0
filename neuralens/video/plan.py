"""What a video run will read and write, known before any frame is decoded: the input (probed), the frames' size
and rate, the time range and the number of frames. ``stylize`` starts from it, and a caller can check it first
(the web app refuses a clip over its limits before queueing it)."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Optional, Tuple, Union

from ..options import OptionError
from .io import VideoInfo, frame_size, probe, rate_of
from .options import VideoOptions


@dataclass
class VideoPlan:
    """The input, the output frames' ``size`` (width, height) and ``fps``, the range ``start``-``end`` seconds
    (``end`` None: to the input's end) and ``frames``, the number of output frames (estimated from the duration
    for containers that do not store a count)."""

    info: VideoInfo
    size: Tuple[int, int]
    fps: Fraction
    start: float
    end: Optional[float]
    frames: int

    @property
    def seconds(self) -> float:
        """The length of the range, in seconds of the input."""
        end = self.info.duration if self.end is None else min(self.end, self.info.duration or self.end)
        return max(0.0, end - self.start)

    def to_dict(self) -> dict:
        """JSON-ready: the input's description, size, fps, range, frames and seconds."""
        return {
            "input": self.info.to_dict(),
            "size": list(self.size),
            "fps": float(self.fps),
            "start": self.start,
            "end": self.end,
            "frames": self.frames,
            "seconds": self.seconds,
        }


def estimate_frames(info: VideoInfo, video: VideoOptions, fps: Fraction) -> int:
    """Output frames of ``info`` between ``video.start`` and ``video.end`` at ``fps`` (the stored count when the
    whole input is taken at its own rate)."""
    end = min(video.end, info.duration) if video.end is not None and info.duration else (video.end or info.duration)
    if not end:
        return info.frames
    if video.start == 0 and video.end is None and video.fps is None and info.frames:
        return info.frames
    return max(1, math.ceil((end - video.start) * float(fps) - 1e-6))


def plan(
    input: Union[str, os.PathLike],
    options: Optional[VideoOptions] = None,
    info: Optional[VideoInfo] = None,
    **fields: Any,
) -> VideoPlan:
    """The plan of painting ``input`` with ``options`` (or VideoOptions' defaults; ``fields`` replace some, e.g.
    ``size=320, end=4``). ``info``: the input's ``probe`` when already made. Returns a VideoPlan; raises
    NeuralensError (one line) for an input that is not a video, OptionError for a ``start`` after its end."""
    video = dataclasses.replace(options or VideoOptions(), **fields).validate()
    info = info or probe(input, video.fps)
    if info.duration and video.start >= info.duration:
        raise OptionError("start", f"{video.start:g} s is after the end of {info.path} ({info.duration:.3g} s)")
    size = frame_size(info.width, info.height, video.size)
    fps = rate_of(video.fps) if video.fps else info.fps
    return VideoPlan(info, size, fps, video.start, video.end, estimate_frames(info, video, fps))
