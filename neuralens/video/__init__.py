"""Video stylization without flicker, from any engine (issue 13).

    from neuralens import video
    video.stylize("clip.mp4", "out.mp4", model="starry-night")            # -> VideoResult
    video.stylize("clip.mp4", "out.mp4", styles=["starry_night.jpg"], size=320, frame_iterations=30)
    for image in video.stylize_frames(video.read_video("clip.mp4", size=320), model="the-scream"):
        ...

The pieces, one concept per module: ``io`` (PyAV read/write, audio, frame folders, GIF), ``flow`` (DIS optical
flow, reliability masks, warping, the flow cache), ``consistency`` (how a frame is tied to the ones before it, per
engine), ``engines`` (model, arbitrary network, optimisation behind one interface), ``metrics`` (Lai et al.'s
warping error), ``options`` (VideoOptions), ``plan`` (what a run will read and write, known before it starts),
``pipeline`` (the threads that overlap decoding, flow, painting and encoding), ``api`` (the run, resumable).
"""

from .api import VideoResult, read_video, stylize, stylize_frames
from .io import probe
from .metrics import warping_error
from .options import VideoOptions
from .plan import VideoPlan, plan

__all__ = [
    "VideoOptions",
    "VideoPlan",
    "VideoResult",
    "plan",
    "probe",
    "read_video",
    "stylize",
    "stylize_frames",
    "warping_error",
]
