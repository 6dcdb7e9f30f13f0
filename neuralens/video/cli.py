"""`neuralens video`: argument parsing and printing over ``neuralens.video.stylize`` (api.py).

The flags come from the VideoOptions, StyleOptions and ApplyOptions declarations."""

from __future__ import annotations

import argparse
import json
import sys

from .. import options
from ..distributed.options import QueueOptions
from ..errors import Interrupted
from ..fast.apply import ApplyOptions
from ..style.options import StyleOptions
from .api import stylize
from .options import VideoOptions

EXAMPLES = """examples:
  neuralens video clip.mp4 --model starry-night -o starry.mp4              (a trained model: fast)
  neuralens video clip.mp4 starry_night.jpg --fast -o starry.mp4           (any painting, one pass per frame)
  neuralens video clip.mp4 starry_night.jpg --size 320 -o starry.mp4       (optimisation: slow, the best quality)
  neuralens video clip.mov --model the-scream --start 5 --end 12 --fps 15 -o part.gif
  neuralens video frames/ --model starry-night -o stylized/                (a folder of numbered frames)
  neuralens video clip.mp4 --model starry-night -o starry.mp4 --resume     (after Ctrl-C: keeps finished frames)
  neuralens video clip.mp4 --model starry-night -o starry.mp4 --broker redis://HOST:6379/0   (on a worker)
"""


def register(subparsers) -> None:
    """Add `video` to the top-level parser."""
    p = subparsers.add_parser(
        "video",
        help="stylize a video without flicker (optical flow ties each frame to the ones before)",
        description="Paint every frame of INPUT (any common video file, a GIF or a folder of numbered frames) "
        "and write OUTPUT (.mp4, .mov, .mkv, .webm, .avi, .gif or a folder), keeping the audio track and the "
        "frame rate. Engines: STYLE (optimisation, Ruder et al. 2016), STYLE --fast (the arbitrary-style "
        "network) or --model NAME|PATH (a trained model). Finished frames are kept in OUTPUT.neuralens-work/ "
        "until the end: Ctrl-C writes a playable partial video, --resume continues.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="video file, GIF, or folder of numbered frames")
    p.add_argument("styles", nargs="*", metavar="STYLE", help="painting(s) whose style to use (not with --model)")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4, .mov, .mkv, .webm, .avi, .gif) or folder")
    p.add_argument("--fast", action="store_true", help="paint STYLE with the arbitrary-style network (one pass)")
    options.add_arguments(p.add_argument_group("video options (Python: VideoOptions fields)"), VideoOptions)
    engine = p.add_argument_group("a trained model instead of STYLE")
    options.add_arguments(engine, ApplyOptions, only=("model", "strength"))
    options.add_arguments(
        p.add_argument_group(
            "optimisation options (Python: StyleOptions fields; colour/device/precision: every engine)"
        ),
        StyleOptions,
        exclude=("size",),
    )
    options.add_arguments(p.add_argument_group("on a job queue (docs/scale-out.md)"), QueueOptions)
    p.add_argument("--report", metavar="JSON", default=None, help="write what the run did (VideoResult) to this file")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=run_video)


def run_video(args) -> int:
    video = VideoOptions(**options.values_from(args, VideoOptions), progress=not args.quiet).validate()
    style_values = {k: v for k, v in options.values_from(args, StyleOptions).items() if k != "size"}
    style = StyleOptions(**style_values)
    apply = ApplyOptions(strength=args.strength)
    queue = QueueOptions(args.broker, args.storage).validate()
    if queue.broker is not None:
        return _run_on_queue(args, queue, video, style, apply)
    result = stylize(
        args.input,
        args.output,
        styles=args.styles,
        model=args.model,
        fast=args.fast,
        options=video,
        style_options=style,
        apply=apply,
    )
    if args.report:
        with open(args.report, "w") as handle:
            json.dump(result.to_dict(), handle, indent=1, default=str)
    if result.stopped:
        raise Interrupted(
            f"stopped after {result.frames} frames; wrote them to {result.output} (playable); finished frames "
            f"are in {result.work_folder}: run the same command with --resume to go on"
        )
    if not args.quiet:
        reused = f", {result.reused} reused" if result.reused else ""
        audio = f", audio {result.audio}" if result.audio else ""
        print(
            f"{result.frames} frames ({result.size[0]}x{result.size[1]}, {result.fps:g} fps{reused}{audio}) in "
            f"{result.seconds:.1f} s, {result.frames_per_second:.1f} frames/s",
            file=sys.stderr,
        )
    print(f"wrote {result.output}")
    return 0


def _run_on_queue(args, queue: QueueOptions, video: VideoOptions, style: StyleOptions, apply: ApplyOptions) -> int:
    """`video ... --broker URL`: the whole video on one worker, its frames followed with one progress bar."""
    from ..distributed.client import video_batch  # noqa: PLC0415 -- Celery and Redis only when asked

    done = video_batch(
        queue, args.input, args.output, video, style, apply, args.styles, args.model, args.fast, args.quiet
    )
    if args.report:
        with open(args.report, "w") as handle:
            json.dump(done.to_dict(), handle, indent=1, default=str)
    if done.stopped:
        raise Interrupted(f"stopped after {done.report.get('frames')} frames; wrote them to {args.output} (playable)")
    print(f"wrote {args.output} ({done.report.get('frames')} frames on {done.job.worker})")
    return 0
