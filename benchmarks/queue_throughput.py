"""Throughput of the job queue (`stylize --model ... --broker URL`) against the in-process path, and the
overhead per job it adds.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.queue_throughput [--jobs 100] [--workers 1 2 4] [--kind fast]

A redis-server of its own on a free 127.0.0.1 port (Debian's `redis-server` must be installed) and a temporary
storage folder. Each job is a tiny one (the Tübingen photo at ``--size`` px through the built-in starry-night
model, or with ``--kind stylize`` a few optimisation steps), so that what is measured is the queue, not the
network. The in-process path is ``fast.apply.stylize_files`` (or ``StyleTransfer.run``) over the same jobs,
each result saved like the command line saves it. For each worker count, the workers (one process each,
started apart and warmed with one job each, so model loading is not counted) take a batch of ``--jobs``
jobs; the time is from the first upload to the last result saved on the client's disk.

Overhead per job = (queue time with 1 worker - in-process time) / jobs: what a job pays for the upload, the
message, the state in Redis, the result written to storage and copied back. Target: <= 50 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from PIL import Image

from benchmarks.style_common import machine_info, machine_markdown, markdown_table, write_report

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
SAMPLES = ROOT.parent / "neuralens" / "samples"


def start_redis(folder: Path) -> tuple:
    """A redis-server on a free loopback port in ``folder``: (process, URL)."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(args + ["--dir", str(folder)], stdout=subprocess.DEVNULL)
    import redis  # noqa: PLC0415

    client = redis.Redis(port=port, socket_connect_timeout=1)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.RedisError:
            time.sleep(0.05)
    client.close()
    return process, f"redis://127.0.0.1:{port}/0"


def start_workers(count: int, broker: str, storage: str, folder: Path) -> List[subprocess.Popen]:
    """``count`` workers of one process each, waited for until ready."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    workers = []
    for number in range(count):
        log = folder / f"worker-{count}-{number}.log"
        command = [sys.executable, "-m", "neuralens", "worker", "--broker", broker, "--storage", storage]
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=open(log, "wb"), env=env, start_new_session=True
        )
        process.log = log
        workers.append(process)
    deadline = time.monotonic() + 180
    for process in workers:
        while "worker ready" not in process.log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("a worker did not start:\n" + process.log.read_text(errors="replace"))
            time.sleep(0.1)
    return workers


def stop_workers(workers: Sequence[subprocess.Popen]) -> None:
    for process in workers:
        os.killpg(process.pid, signal.SIGTERM)
    for process in workers:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def make_jobs(folder: Path, count: int, size: int) -> List[tuple]:
    """(photo, output) pairs: the Tübingen photo at ``size`` px, ``count`` outputs."""
    photo = folder / "tubingen.jpg"
    image = Image.open(SAMPLES / "tubingen.jpg").convert("RGB")
    image.thumbnail((size, size), Image.LANCZOS)
    image.save(photo, quality=95)
    out = folder / "out"
    out.mkdir(exist_ok=True)
    return [(photo, out / f"{number:04d}.png") for number in range(count)]


def settings_for(kind: str, size: int):
    if kind == "fast":
        from neuralens.fast.apply import ApplyOptions  # noqa: PLC0415

        return ApplyOptions(model="starry-night", size=size).validate()
    from neuralens.style import StyleOptions  # noqa: PLC0415

    return StyleOptions(size=size, iterations=3, coarse_iterations=0, scales=1, early_stop_patience=0).validate()


def in_process(kind: str, settings, pairs: List[tuple]) -> float:
    """Seconds for every job in this process, the model loaded (and warmed) before the clock starts."""
    from neuralens.imageio import save_result  # noqa: PLC0415

    if kind == "fast":
        from neuralens.fast.apply import stylize_files  # noqa: PLC0415

        model = settings.load()
        list(stylize_files(pairs[:1], settings, model))
        started = time.perf_counter()
        list(stylize_files(pairs, settings, model))
        return time.perf_counter() - started
    from neuralens.style import StyleTransfer  # noqa: PLC0415

    style = SAMPLES / "starry_night.jpg"
    transfer = StyleTransfer(style, settings)
    transfer.run(pairs[0][0])
    started = time.perf_counter()
    for photo, out in pairs:
        save_result(transfer.run(photo).image, out)
    return time.perf_counter() - started


def queued(kind: str, settings, pairs: List[tuple], queue) -> float:
    """Seconds for every job through the queue, from the first upload to the last result saved."""
    from neuralens.distributed.client import fast_stylize_batch, stylize_batch  # noqa: PLC0415

    started = time.perf_counter()
    if kind == "fast":
        fast_stylize_batch(queue, settings, pairs, quiet=True, timeout=1800)
    else:
        stylize_batch(queue, [SAMPLES / "starry_night.jpg"], settings, pairs, quiet=True, timeout=1800)
    return time.perf_counter() - started


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.queue_throughput", description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=100, help="jobs per batch (default %(default)s)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="worker counts (default 1 2 4)")
    p.add_argument("--kind", choices=("fast", "stylize"), default="fast", help="the job (default %(default)s)")
    p.add_argument("--size", type=int, default=64, help="long side of each job's photo (default %(default)s)")
    p.add_argument("--write", action="store_true", help="write benchmarks/results/queue_throughput.md and .json")
    args = p.parse_args(argv)

    from neuralens.distributed.options import QueueOptions  # noqa: PLC0415

    info = machine_info()
    folder = Path(tempfile.mkdtemp(prefix="neuralens-queue-bench-"))
    redis_process, broker = start_redis(folder)
    storage = (folder / "storage").as_uri()
    queue = QueueOptions(broker, storage).validate()
    settings = settings_for(args.kind, args.size)
    pairs = make_jobs(folder, args.jobs, args.size)
    rows: List[Dict[str, float]] = []
    try:
        local = in_process(args.kind, settings, pairs)
        print(f"in-process: {local:.2f} s for {args.jobs} jobs", file=sys.stderr)
        for count in args.workers:
            workers = start_workers(count, broker, storage, folder)
            try:
                queued(args.kind, settings, pairs[: count * 2], queue)  # every worker loads its model
                seconds = queued(args.kind, settings, pairs, queue)
            finally:
                stop_workers(workers)
            rows.append({"workers": count, "seconds": seconds})
            print(f"{count} worker(s): {seconds:.2f} s", file=sys.stderr)
    finally:
        redis_process.terminate()
        redis_process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    single = next((r["seconds"] for r in rows if r["workers"] == 1), None)
    overhead_ms = None if single is None else (single - local) / args.jobs * 1000
    table = [["in-process", local, args.jobs / local, local / args.jobs * 1000, "–"]]
    for row in rows:
        extra = (row["seconds"] - local) / args.jobs * 1000
        table.append(
            [
                f"{row['workers']} worker(s)",
                row["seconds"],
                args.jobs / row["seconds"],
                row["seconds"] / args.jobs * 1000,
                extra,
            ]
        )
    body = "\n\n".join(
        [
            f"{args.jobs} jobs of kind `{args.kind}` at {args.size} px; {os.environ.get('OMP_NUM_THREADS', 'default')} "
            "OpenMP thread(s) per process.",
            markdown_table(["path", "seconds", "jobs/s", "ms/job", "ms/job over in-process"], table),
            f"Overhead per job (1 worker against in-process): **{overhead_ms:.1f} ms** (target <= 50 ms)."
            if overhead_ms is not None
            else "",
            "## Machine\n\n" + machine_markdown(info),
        ]
    )
    print(body)
    if args.write:
        data = {"machine": info, "jobs": args.jobs, "kind": args.kind, "size": args.size}
        data.update(in_process_seconds=local, queued=rows, overhead_ms_per_job=overhead_ms)
        write_report(RESULTS, "queue_throughput", "Job queue throughput", body, data, smoke=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
