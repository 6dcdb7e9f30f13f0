"""The S3 storage (``s3://BUCKET/PREFIX?endpoint_url=...``) against moto's S3 server on 127.0.0.1: every
method of the storage, the exclusive create under a race, the fetch cache, and one-line errors. Dummy
credentials, loopback only: nothing reaches AWS. Skipped, saying why, without boto3 or moto[server]."""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from neuralens.distributed.options import QueueOptions, check_storage_url
from neuralens.distributed.storage import S3Storage, file_key, open_storage
from neuralens.errors import NeuralensError

BUCKET = "neuralens-test"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # nothing from this machine's own AWS set-up, and never the instance metadata service
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


class SerializedApp:
    """moto's WSGI app, one request at a time. moto checks ``If-None-Match: *`` and then writes, without a
    lock, so two conditional PUTs in the same instant could both succeed there; on S3 each request is atomic,
    and this makes moto so."""

    def __init__(self, app):
        self.app, self.lock = app, threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            return list(self.app(environ, start_response))


@pytest.fixture(scope="module")
def s3_endpoint():
    """http://127.0.0.1:PORT of a moto S3 server in this process (with the dummy credentials in the
    environment for the module), with the bucket BUCKET."""
    boto3 = pytest.importorskip("boto3", reason="boto3 is not installed (pip install -e .[s3])")
    server = pytest.importorskip(
        "moto.server", reason="moto's server is not installed (pip install 'moto[server]'; requirements-dev.txt)"
    )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
            patch.delenv(name, raising=False)
        moto = server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        try:
            moto._server.app = SerializedApp(moto._server.app)  # see SerializedApp
            host, port = moto.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            boto3.session.Session().client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
            yield endpoint
        finally:
            moto.stop()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache folder of the test's own (fetch downloads there)."""
    monkeypatch.setenv("NEURALENS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def storage(s3_endpoint, cache, request) -> S3Storage:
    """An S3 storage under a prefix of this test's own."""
    return open_storage(f"s3://{BUCKET}/{request.node.name.replace('_', '-')}?endpoint_url={s3_endpoint}")


def test_urls_are_checked_without_connecting():
    check_storage_url("s3://renders")
    check_storage_url("s3://renders/neuralens/queue?endpoint_url=https://minio.lan:9000&region=eu-west-1")
    bad = {
        "s3://AKIA:secret@renders/x": "must not hold credentials",
        "s3://ab": "must name a bucket",
        "s3:///x": "must name a bucket",
        "s3://renders/../x": "bad prefix",
        "s3://renders?endpoint=http://x": "unknown parameter 'endpoint'",
        "s3://renders?region=a&region=b": "a second 'region'",
        "s3://renders?endpoint_url=ftp://x": "bad endpoint_url",
        "s3://renders?endpoint_url=http://x:99999": "bad endpoint_url",
        "s3://renders?endpoint_url=http://x/path": "with a path",
        "s3://renders?region=eu%20west": "bad region",
        "gs://renders": "must be a folder URL such as file:///shared/neuralens",
    }
    for url, message in bad.items():
        with pytest.raises(NeuralensError, match=message) as raised:
            check_storage_url(url)
        assert "\n" not in str(raised.value)
    for url in ("s3://AKIA:secret@renders/x", "s3://renders/x?endpoint_url=http://AKIA:secret@minio.lan:9000"):
        with pytest.raises(NeuralensError, match="must not hold credentials") as raised:
            check_storage_url(url)
        assert "secret" not in str(raised.value) and "AKIA" not in str(raised.value)
    QueueOptions("redis://127.0.0.1:6379/0", "s3://renders/q").validate()


def test_bytes_and_files_round_trip(storage, tmp_path):
    assert storage.put_bytes(b"\x00one", "results/a.json") == "results/a.json"
    assert storage.exists("results/a.json") and storage.read_bytes("results/a.json") == b"\x00one"
    storage.put_bytes(b"two", "results/a.json")  # put_bytes replaces
    assert storage.read_bytes("results/a.json") == b"two"
    source = tmp_path / "photo.jpg"
    source.write_bytes(os.urandom(300_000))
    key = storage.put_file(source, file_key(source))
    assert key.startswith("inputs/") and key.endswith(".jpg")
    fetched = storage.fetch(key)
    assert fetched.read_bytes() == source.read_bytes() and fetched.suffix == ".jpg"
    copied = storage.copy_to(key, tmp_path / "out" / "copy.jpg")
    assert copied == tmp_path / "out" / "copy.jpg" and copied.read_bytes() == source.read_bytes()
    assert not list((tmp_path / "out").glob(".*tmp"))  # no temporary file left behind
    assert storage.read_bytes("results/missing.json") is None and not storage.exists("results/missing.json")


def test_put_file_keeps_an_existing_key_unless_replace(storage, tmp_path):
    first, second = tmp_path / "1.bin", tmp_path / "2.bin"
    first.write_bytes(b"first")
    second.write_bytes(b"second")
    storage.put_file(first, "results/model.pt")
    storage.put_file(second, "results/model.pt")
    assert storage.read_bytes("results/model.pt") == b"first"
    storage.put_file(second, "results/model.pt", replace=True)
    assert storage.read_bytes("results/model.pt") == b"second"


def test_create_is_exclusive(storage):
    assert storage.create("results/j.json", b"first")
    assert not storage.create("results/j.json", b"second")
    assert storage.read_bytes("results/j.json") == b"first"
    barrier = threading.Barrier(8)

    def create(n: int) -> bool:
        barrier.wait()
        return storage.create("results/race.json", b"%d" % n)

    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(create, range(8)))
    assert won.count(True) == 1
    assert storage.read_bytes("results/race.json") == b"%d" % won.index(True)


def test_fetch_caches_and_downloads_a_changed_object_again(storage, cache):
    storage.put_bytes(b"version 1", "results/r.png")
    path = storage.fetch("results/r.png")
    assert path.read_bytes() == b"version 1" and path.name == "r.png"
    assert cache in path.parents and (cache / "s3") in path.parents
    before = path.stat().st_mtime_ns
    time.sleep(0.01)
    assert storage.fetch("results/r.png") == path and path.stat().st_mtime_ns == before  # reused
    storage.put_bytes(b"version 2!", "results/r.png")
    again = storage.fetch("results/r.png")
    assert again != path and again.read_bytes() == b"version 2!" and again.name == "r.png"
    storage.put_bytes(b"version 1", "results/r.png")  # the first content again: its copy is reused
    assert storage.fetch("results/r.png") == path and path.stat().st_mtime_ns == before
    assert not [p for p in cache.rglob("*") if p.name.endswith(".tmp")]


def test_a_missing_key_is_a_one_line_error(storage, tmp_path):
    for fetch in (storage.fetch, lambda key: storage.copy_to(key, tmp_path / "x.png")):
        with pytest.raises(NeuralensError, match="is not in the storage s3://.*do the client and the workers share"):
            fetch("results/nothing.png")
    assert not (tmp_path / "x.png").exists()


def test_bad_keys_are_refused(storage):
    for bad in ("../etc/passwd", "/etc/passwd", "a/../../b", "", "a//b"):
        for call in (storage.exists, storage.fetch, storage.read_bytes, lambda key: storage.put_bytes(b"", key)):
            with pytest.raises(NeuralensError, match="bad storage key"):
                call(bad)


def test_prefixes_keep_storages_apart(s3_endpoint, cache):
    one = open_storage(f"s3://{BUCKET}/one?endpoint_url={s3_endpoint}")
    two = open_storage(f"s3://{BUCKET}/two?endpoint_url={s3_endpoint}")
    one.put_bytes(b"1", "results/k.json")
    assert two.read_bytes("results/k.json") is None
    assert two.create("results/k.json", b"2") and one.read_bytes("results/k.json") == b"1"


def test_open_time_errors_are_one_line(s3_endpoint, cache, monkeypatch):
    with pytest.raises(NeuralensError, match="there is no bucket no-such-bucket at http://127.0.0.1") as raised:
        open_storage(f"s3://no-such-bucket/x?endpoint_url={s3_endpoint}")
    assert "\n" not in str(raised.value)
    with pytest.raises(NeuralensError, match="must not hold credentials"):
        open_storage(f"s3://user:pass@{BUCKET}?endpoint_url={s3_endpoint}")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    with pytest.raises(NeuralensError, match="no AWS credentials found") as raised:
        open_storage(f"s3://{BUCKET}?endpoint_url={s3_endpoint}")
    assert "\n" not in str(raised.value)


def test_an_endpoint_that_does_not_answer_is_a_one_line_error(s3_endpoint, cache):
    import socket

    with socket.socket() as sock:  # a loopback port with nothing listening
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(NeuralensError, match=f"cannot reach http://127.0.0.1:{closed}") as raised:
        open_storage(f"s3://{BUCKET}?endpoint_url=http://127.0.0.1:{closed}")
    assert "\n" not in str(raised.value) and time.monotonic() - started < 20


def test_without_boto3_the_message_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_boto3(name, *args, **kwargs):
        if name.split(".")[0] in ("boto3", "botocore"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_boto3)
    with pytest.raises(NeuralensError, match=r"s3:// storage needs boto3: pip install neuralens\[s3\]"):
        open_storage("s3://renders/q")


def test_a_store_that_ignores_conditional_writes_is_refused(s3_endpoint, cache, monkeypatch):
    connect = S3Storage._connect

    def connect_dropping_the_condition(self):  # as a store that ignores If-None-Match would behave
        client = connect(self)

        def drop(request, **_):
            request.headers.pop("If-None-Match", None)

        client.meta.events.register("before-send.s3.PutObject", drop)
        return client

    monkeypatch.setattr(S3Storage, "_connect", connect_dropping_the_condition)
    with pytest.raises(NeuralensError, match=r"does not honour conditional writes \(If-None-Match: \*\)"):
        open_storage(f"s3://{BUCKET}/ignored?endpoint_url={s3_endpoint}")


@pytest.fixture(scope="module")
def storage_url(s3_endpoint) -> str:
    """This module's queue storage (conftest's ``workers`` take it): a prefix in the moto bucket."""
    return f"s3://{BUCKET}/queue?endpoint_url={s3_endpoint}"


def test_a_batch_runs_on_a_worker_with_s3_storage(workers, redis_url, storage_url, photos, tmp_path):
    """A worker process (the dummy credentials in its environment, the endpoint in the URL) takes its inputs
    from the bucket and puts its result and completion marker there; the client saves the result."""
    from neuralens.distributed.client import stylize_batch
    from neuralens.distributed.state import DONE
    from neuralens.style import StyleOptions

    workers.start(1)
    settings = StyleOptions(size=48, iterations=4, coarse_iterations=0, scales=1).validate()
    out = tmp_path / "out.png"
    try:
        ((_, saved, finished),) = stylize_batch(
            QueueOptions(redis_url, storage_url), [photos[-1]], settings, [(photos[0], out)], quiet=True, timeout=300
        )
    except BaseException:
        print(workers.logs())
        raise
    assert saved == out and finished.job.status == DONE
    from PIL import Image

    with Image.open(out) as image:
        assert max(image.size) == 48
    storage = open_storage(storage_url)
    assert storage.exists(finished.job.result) and storage.exists(f"results/{finished.job.id}.json")
    assert storage.exists(file_key(photos[0])) and storage.exists(file_key(photos[-1]))
