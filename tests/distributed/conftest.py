"""Fixtures for the job-queue tests: a redis-server of the tests' own on a free loopback port (skipped, saying
why, when it is not installed), worker processes, tiny images."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest
import torch
from PIL import Image

SAMPLES = Path(__file__).resolve().parents[2] / "neuralens" / "samples"
START_SECONDS = 90.0  # a worker imports torch and Celery: slow on a busy 2-core machine
WORKER_THREADS = "1"  # each worker's OMP_NUM_THREADS: two of them share the 2 cores


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """redis://127.0.0.1:PORT/0 of a redis-server started for this test module (no persistence, loopback
    only), stopped afterwards."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed (scripts/test-services.sh installs Debian's when run as root)")
    pytest.importorskip("celery", reason="celery is not installed (pip install -e .[queue])")
    redis = pytest.importorskip("redis", reason="redis-py is not installed (pip install -e .[queue])")
    folder = tmp_path_factory.mktemp("redis")
    for _attempt in range(3):  # a free port can be taken between the probe and the server's bind
        port = _free_port()
        log = open(folder / f"redis-{port}.log", "wb")
        process = subprocess.Popen(
            [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", str(folder), "--protected-mode", "yes"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            try:
                client.ping()
                break
            except redis.RedisError:
                time.sleep(0.05)
        else:
            process.kill()
            process.wait(10)
            log.close()
            continue
        client.close()
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
            log.close()
        return
    pytest.fail("redis-server did not start (see its log in the test's temporary folder)")


class Workers:
    """`neuralens worker` processes, each in its own process group (so a SIGKILL takes its pool along, as
    when a machine is lost), logging to files."""

    def __init__(self, broker: str, storage: str, folder: Path):
        self.broker, self.storage, self.folder = broker, storage, folder
        self.processes: List[subprocess.Popen] = []

    def start(self, count: int, *flags: str) -> List[subprocess.Popen]:
        """Start ``count`` workers and wait until each says it is ready. Returns them."""
        env = dict(os.environ, OMP_NUM_THREADS=WORKER_THREADS, PYTHONUNBUFFERED="1", NEURALENS_WORKER_LOGLEVEL="INFO")
        started = []
        for _ in range(count):
            log = self.folder / f"worker-{len(self.processes)}.log"
            process = subprocess.Popen(
                [sys.executable, "-m", "neuralens", "worker", "--broker", self.broker, "--storage", self.storage]
                + list(flags),
                stdout=subprocess.DEVNULL,
                stderr=open(log, "wb"),
                env=env,
                start_new_session=True,
            )
            process.log = log
            self.processes.append(process)
            started.append(process)
        deadline = time.monotonic() + START_SECONDS
        for process in started:
            while "worker ready" not in process.log.read_text(errors="replace"):
                assert process.poll() is None, process.log.read_text(errors="replace")
                assert time.monotonic() < deadline, "worker did not start: " + process.log.read_text(errors="replace")
                time.sleep(0.2)
        return started

    def logs(self) -> str:
        """Every worker's log, for the message of a failed test."""
        return "\n".join(f"--- {p.log.name}\n{p.log.read_text(errors='replace')[-4000:]}" for p in self.processes)

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL a worker and its pool at once (no chance to hand its job back)."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop(self) -> None:
        """Stop every worker: SIGTERM (warm shutdown), then SIGKILL after a while."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)  # the pool too, even when the main process has exited
            except ProcessLookupError:
                pass
            process.wait(10)


@pytest.fixture(scope="module")
def storage_url(tmp_path_factory) -> str:
    return tmp_path_factory.mktemp("storage").resolve().as_uri()


@pytest.fixture(scope="module")
def workers(redis_url, storage_url, tmp_path_factory):
    """A factory of worker processes on this module's broker and storage, all stopped afterwards."""
    pool = Workers(redis_url, storage_url, tmp_path_factory.mktemp("workers"))
    try:
        yield pool
    finally:
        pool.stop()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> List[Path]:
    """Three tiny photos (48 px long side) and the style (the last one) in one folder."""
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for name in ("tubingen", "chelsea", "the_scream", "starry_night"):
        image = Image.open(SAMPLES / f"{name}.jpg").convert("RGB")
        image.thumbnail((48, 48), Image.LANCZOS)
        path = folder / f"{name}.jpg"
        image.save(path, quality=95)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def two_workers(workers):
    """Two workers of one process each on this module's broker and storage."""
    return workers.start(2)


@pytest.fixture()
def threads_of_a_worker(monkeypatch):
    """This process on the workers' thread count while the test runs, for a run in-process that must give the
    workers' pixels: across thread counts sums round differently (VGG's in an optimisation; a fast network's in
    bf16 on some CPUs), and a lossy video encoder turns a 1-level change into changes of up to 28 levels in
    whole frames (seen once in CI, 2026-12-07, with this process on 2 threads and the workers on 1)."""
    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", WORKER_THREADS)  # devices.configure_threads leaves the count alone then
    torch.set_num_threads(int(WORKER_THREADS))
    yield
    torch.set_num_threads(threads)
