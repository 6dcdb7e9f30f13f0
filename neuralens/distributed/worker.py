"""Running a worker: check the broker and the storage, pin the device, start Celery's worker on the
neuralens queue (a prefork pool of ``concurrency`` processes)."""

from __future__ import annotations

import os
import socket
import sys
from typing import IO, Optional

from ..errors import NeuralensError
from . import state
from .app import QUEUE, make_app
from .options import CUDA_INDEX, QueueOptions, WorkerOptions, shown
from .storage import open_storage


def pin_device(device: str) -> str:
    """The device name the style API takes for ``device``: cuda:N becomes cuda, with only GPU N (of those
    visible already) visible to this process and its pool, set before CUDA starts so that every pool process
    sees that one GPU. NeuralensError, before any job, when the device is not there."""
    # Ask through NVML, which does not initialise CUDA: the pool's processes are forked from this one, and
    # CUDA initialised before a fork does not work in the children.
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    import torch  # noqa: PLC0415

    from .. import devices  # noqa: PLC0415

    match = CUDA_INDEX.match(device)
    if match:
        index = int(match.group(1))
        if index >= torch.cuda.device_count():
            raise NeuralensError(f"--device {device} is not available on this machine")
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        os.environ["CUDA_VISIBLE_DEVICES"] = visible.split(",")[index].strip() if visible else str(index)
        device = "cuda"
    try:
        devices.pick_device(device)
    except NeuralensError:
        raise NeuralensError(f"--device {device} is not available on this machine") from None
    return device


def run_worker(queue: QueueOptions, worker: WorkerOptions, stream: Optional[IO[str]] = None) -> int:
    """Serve jobs from ``queue.broker`` until stopped (Ctrl-C or SIGTERM: the running jobs finish first).
    Returns the exit status; NeuralensError, before anything starts, for an unreachable broker or a storage
    that cannot be written."""
    queue.validate()
    worker.validate()
    if queue.broker is None:
        raise NeuralensError("a worker needs the job queue: --broker redis://HOST:6379/0")
    device = pin_device(worker.device)
    state.connect(queue.broker).close()  # one line now rather than Celery's retry loop
    storage = open_storage(queue.storage)
    name = f"neuralens-{os.getpid()}@{socket.gethostname()}"
    context = {
        "storage": storage.url,
        "device": device,
        "lease": worker.lease,
        "preview_every": worker.preview_every,
        "name": name,
    }
    app = make_app(queue.broker, worker, context)
    out = stream if stream is not None else sys.stderr

    from celery.signals import worker_ready, worker_shutdown  # noqa: PLC0415

    from .health import WorkerBeat  # noqa: PLC0415

    # The health key (health.py): from the ready line until shutdown, in this main process, which stays up
    # while the pool's processes come and go.
    beat = WorkerBeat(
        state.connect(queue.broker),
        name,
        {"pid": os.getpid(), "device": worker.device, "concurrency": worker.concurrency},
    )

    def ready(**_kwargs) -> None:
        beat.start()
        print(
            f"worker ready: {name}, {worker.concurrency} process(es) on {worker.device}, "
            f"broker {shown(queue.broker)}, storage {storage.url}",
            file=out,
            flush=True,
        )

    worker_ready.connect(ready, weak=False)
    worker_shutdown.connect(lambda **_kwargs: beat.stop(), weak=False)
    argv = [
        "--quiet",  # no banner: the ready line says what matters
        "worker",
        f"--concurrency={worker.concurrency}",
        "--pool=prefork",
        f"--loglevel={os.environ.get('NEURALENS_WORKER_LOGLEVEL', 'WARNING')}",  # INFO: every job
        f"--queues={QUEUE}",
        f"--hostname={name}",
        # No gossip, mingle or worker heartbeats: workers need nothing from each other (a second less to start,
        # and no broadcast traffic); job liveness is the lease's business.
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    try:
        app.worker_main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
