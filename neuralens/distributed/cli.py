"""`neuralens worker`: run jobs (style, video, training, ...) from a Redis job queue. The flags come from QueueOptions and
WorkerOptions; nothing here imports Celery or Redis until the command runs."""

from __future__ import annotations

import argparse
import json

from .. import options
from .options import QueueOptions, WorkerOptions

WORKER_EXAMPLES = """examples:
  neuralens worker --broker redis://127.0.0.1:6379/0                     (one job at a time, this machine)
  neuralens worker --broker redis://queue.lan:6379/0 --storage file:///mnt/shared/neuralens --device cuda:0
  neuralens worker --broker redis://queue.lan:6379/0 --storage file:///mnt/shared/neuralens --concurrency 2
then, anywhere:
  neuralens stylize photos/ starry_night.jpg -o out/ --broker redis://queue.lan:6379/0 --storage file:///mnt/shared/neuralens
"""


def register(subparsers) -> None:
    """Add the `worker` subcommand."""
    p = subparsers.add_parser(
        "worker",
        help="run jobs from a Redis job queue (stylize --broker), on this machine's CPU or GPU",
        description="Take jobs (stylize, video, classify train, ...) from the queue at --broker and run them; inputs and results are in the "
        "shared storage at --storage (the same URL as the clients'). A job whose worker dies is run again by "
        "another one. Stop with Ctrl-C: running jobs finish first.",
        epilog=WORKER_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # QueueOptions' help for --broker is the clients' ("default none: run here"); a worker needs one.
    broker = "the Redis job queue to take jobs from (redis://HOST:6379/0, the clients' --broker); required"
    options.add_arguments(p, QueueOptions, helps={"broker": broker})
    options.add_arguments(p, WorkerOptions)
    p.add_argument(
        "--health",
        action="store_true",
        help="do not run a worker: print the live workers on --broker as JSON and exit 0 when one of them runs "
        "on this machine, 1 otherwise (a container's health check)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    queue = QueueOptions(**options.values_from(args, QueueOptions))
    if args.health:
        from .health import check_workers, require_broker  # noqa: PLC0415

        report = check_workers(require_broker(queue.validate().broker))
        print(json.dumps(report, indent=2))
        return 0 if report["healthy"] else 1

    from .worker import run_worker  # noqa: PLC0415

    worker = WorkerOptions(**options.values_from(args, WorkerOptions))
    return run_worker(queue, worker)
