"""Every setting of `neuralens video` that is about the video (the engines keep their own options: StyleOptions
for optimisation, ApplyOptions for a trained model), declared once: the flags, the checks and the web form come
from ``VideoOptions``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..options import OptionError, check, option, specs
from .flow import PRESETS

CONSISTENCY = ("flow", "none")
# The engines' temporal weights when --temporal-weight is not given (measured: benchmarks/video_flicker.py).
# Feed-forward: none (the previous result carried where the flow is reliable; a weight w blends instead,
# (stylized + w * warped) / (1 + w), which costs style: see consistency.FlowBlend); optimisation: the weight of
# Ruder et al.'s temporal loss in units of the first frame's loss per pixel value (see consistency.RuderTemporal).
DEFAULT_BLEND_WEIGHT = None
DEFAULT_TEMPORAL_LOSS_WEIGHT = 100.0
DEFAULT_FRAME_ITERATIONS = 40


@dataclass
class VideoOptions:
    """How a video is read, made consistent over time and written (the defaults of `neuralens video`)."""

    size: Optional[int] = option(
        640,
        "long side of the output frames in pixels; larger frames are scaled down, smaller ones kept",
        kind="int",
        above=0,
        nullable=True,
        metavar="PX",
        none_help="the input's own size",
    )
    start: float = option(0.0, "where to begin in the input, in seconds", minimum=0, metavar="SECONDS")
    end: Optional[float] = option(
        None, "where to stop in the input, in seconds", kind="float", above=0, metavar="SECONDS", none_help="its end"
    )
    fps: Optional[float] = option(
        None,
        "frame rate of the output (frames are picked from the input to match it)",
        kind="float",
        above=0,
        maximum=240,
        none_help="the input's (25 for a folder of frames)",
    )
    consistency: str = option(
        "flow",
        "temporal consistency: flow (optical flow between the input frames carries the previous result "
        "forward) or none (every frame on its own; flickers)",
        choices=CONSISTENCY,
    )
    temporal_weight: Optional[float] = option(
        None,
        "how strongly a frame keeps the previous result where the flow is reliable: for a model the blend "
        "weight w of (stylized + w * warped) / (1 + w), for optimisation the temporal loss weight",
        kind="float",
        minimum=0,
        none_help=f"a model carries its result (no blend), {DEFAULT_TEMPORAL_LOSS_WEIGHT:g} for optimisation",
    )
    long_term: bool = option(
        True, "optimisation: also keep frames t-2 and t-4 where t-1 does not see them (Ruder et al.'s long-term loss)"
    )
    frame_iterations: int = option(
        DEFAULT_FRAME_ITERATIONS,
        "optimisation with flow: loss evaluations for each frame after the first (it starts from the previous "
        "result; the first frame runs the full plan)",
        above=0,
    )
    flow_preset: str = option("medium", "DIS optical flow preset (faster ones are less accurate)", choices=PRESETS)
    audio: bool = option(True, "copy the input's audio track")
    resume: bool = option(
        False,
        "continue an interrupted run: frames already finished (in OUTPUT's work folder) are kept",
        web="the server keeps each job's frames",
    )
    keep_frames: bool = option(
        False,
        "keep the work folder of stylized frames after a finished run (it is removed by default)",
        web="the server removes a job's files with the job",
    )
    progress: bool = option(True, "show progress on stderr", cli="--quiet", web="the page shows progress", sweep=False)

    def validate(self) -> VideoOptions:
        """Check every value; raise OptionError naming the first bad field. Returns self."""
        check(self)
        if self.end is not None and self.end <= self.start:
            raise OptionError("end", f"must be after --start ({self.start:g} s), got {self.end:g}")
        return self

    def blend_weight(self) -> Optional[float]:
        """The feed-forward engine's blend weight (None: carry the result, no blend)."""
        return DEFAULT_BLEND_WEIGHT if self.temporal_weight is None else self.temporal_weight

    def loss_weight(self) -> float:
        """The optimisation engine's temporal loss weight."""
        return DEFAULT_TEMPORAL_LOSS_WEIGHT if self.temporal_weight is None else self.temporal_weight

    def to_dict(self) -> dict:
        """The settings as JSON-ready values (``progress`` left out)."""
        return {name: getattr(self, name) for name in specs(self) if name != "progress"}
