"""The Celery app of the job queue: how messages are delivered, acknowledged and re-delivered.

- Late acknowledgement (``task_acks_late``): a message is acknowledged when its job has finished, not when
  a worker takes it, so a job whose worker dies is still in the broker.
- Reject on worker loss (``task_reject_on_worker_lost``): when a pool process dies mid-job (killed, out of
  memory) its worker puts the message back at once.
- Visibility timeout: when the whole worker vanishes (SIGKILL, machine lost) nobody is left to put it back;
  Redis hands an unacknowledged message to another worker once it is this old. Every worker sweeps for such
  messages every few seconds (``unacked_restore_interval``).
- One message reserved per pool process (``worker_prefetch_multiplier=1``): a long job never holds a second
  one hostage while other workers are idle.
- JSON only, no results backend: messages carry keys and options (never images, never pickles), and
  results and states live in storage and in Redis (``state.py``), where every client reads them.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from .options import WorkerOptions

QUEUE = "neuralens"
STYLIZE_TASK = "neuralens.stylize"
FAST_TASK = "neuralens.fast_stylize"
VIDEO_TASK = "neuralens.video"
CLASSIFY_TASK = "neuralens.classify_train"
FACES_TASK = "neuralens.faces_encode"


def make_app(broker: str, worker: Optional[WorkerOptions] = None, context: Optional[Dict[str, Any]] = None):
    """A Celery app on ``broker`` with the neuralens tasks registered. ``worker`` gives the timeouts (the
    defaults of WorkerOptions otherwise); ``context`` (the worker's storage URL, device, lease, preview
    cadence) is what the tasks read in the worker's processes. Returns the app."""
    from celery import Celery  # noqa: PLC0415 -- only with --broker: the default install has no Celery

    worker = worker or WorkerOptions()
    app = Celery("neuralens", broker=broker, set_as_current=False)
    visibility = float(worker.visibility_timeout)
    sweep = max(1.0, min(10.0, visibility / 4))
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,  # a job that failed has reported so; running it again helps nobody
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility,
            # Sweep for abandoned messages a few times per visibility timeout (Celery's default is every
            # 100 s, far too slow for short timeouts), on every sweep call.
            "unacked_restore_interval": sweep,
            "unacked_restore_throttle": 1,
            # The sweep holds a lock in Redis for milliseconds; a worker killed while holding it would stop
            # every sweep for the lock's life (kombu's default: 300 s), so it lives only a few sweeps.
            "unacked_mutex_expire": int(sweep * 3),
            "socket_connect_timeout": 5,
        },
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    app.conf.neuralens = dict(context or {})

    from . import tasks  # noqa: PLC0415 -- the tasks import torch; a client that only sends needs neither

    tasks.register(app)
    return app
