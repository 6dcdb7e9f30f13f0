"""`neuralens stylize ... --broker URL`: a batch through two worker processes gives the images of the
in-process path (optimisation and --model), bad URLs are one-line errors, and the default path never imports
Celery or Redis."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

TINY = ["--size", "48", "--iterations", "12", "--coarse-iterations", "0", "--scales", "1"]


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_batch_through_two_workers_matches_in_process(
    two_workers, redis_url, storage_url, photos, run_cli, tmp_path, threads_of_a_worker
):
    *contents, style = photos
    inputs = [contents[0], style, "--content", contents[1], "--content", contents[2]]
    queued, local, report = tmp_path / "queued", tmp_path / "local", tmp_path / "report.json"
    code, _, err = run_cli(
        "stylize", *inputs, *TINY, "-o", queued, "--broker", redis_url, "--storage", storage_url, "--report", report
    )
    assert code == 0, err
    # In-process on the workers' thread count (threads_of_a_worker): on 2 threads against their 1, 12 L-BFGS steps
    # carry VGG's differently rounded sums into 1-level differences at about 1 % of the pixels (measured).
    code, _, err = run_cli("stylize", *inputs, *TINY, "-o", local, "--quiet")
    assert code == 0, err
    for content in contents:
        name = f"{content.stem}.png"
        assert np.array_equal(pixels(queued / name), pixels(local / name)), name
    runs = json.loads(report.read_text())["runs"]
    assert [run["job"]["status"] for run in runs] == ["done"] * 3
    assert all(run["history"] for run in runs)  # the worker's own report travels back


def test_fast_model_through_the_queue_matches_in_process(
    two_workers, redis_url, storage_url, photos, run_cli, tmp_path
):
    content = photos[0]
    flags = ["--model", "starry-night", "--size", "48"]
    code, _, err = run_cli(
        "stylize", content, *flags, "-o", tmp_path / "q.png", "--broker", redis_url, "--storage", storage_url
    )
    assert code == 0, err
    assert run_cli("stylize", content, *flags, "-o", tmp_path / "l.png", "--quiet")[0] == 0
    assert np.array_equal(pixels(tmp_path / "q.png"), pixels(tmp_path / "l.png"))


def test_bad_urls_are_one_line_errors(cli_error, photos, tmp_path):
    content, style = photos[0], photos[-1]
    out = tmp_path / "o.png"
    assert "--broker must be a Redis URL" in cli_error("stylize", content, style, "-o", out, "--broker", "http://x")
    message = cli_error(
        "stylize", content, style, "-o", out, "--broker", "redis://127.0.0.1:1/0", "--storage", "s3://b"
    )
    assert "--storage must name a bucket" in message
    assert "--storage is for a job queue" in cli_error(
        "stylize", content, style, "-o", out, "--storage", tmp_path.as_uri()
    )
    pytest.importorskip("redis")
    closed = "redis://127.0.0.1:1/0"
    assert "cannot reach the broker redis://127.0.0.1:1/0" in cli_error("worker", "--broker", closed)
    assert "cannot reach the broker" in cli_error("stylize", content, style, "-o", out, "--broker", closed)
    assert "--device must be one of" in cli_error("worker", "--broker", closed, "--device", "tpu")
    assert "--device cuda:99 is not available" in cli_error("worker", "--broker", closed, "--device", "cuda:99")


def test_default_path_imports_neither_celery_nor_redis(photos, tmp_path):
    code = (
        "import sys; from neuralens import cli; "
        f"status = cli.main(['stylize', {str(photos[0])!r}, {str(photos[-1])!r}, '--size', '32', '--iterations', '2', "
        f"'--coarse-iterations', '0', '--scales', '1', '--quiet', '-o', {str(tmp_path / 'o.png')!r}]); "
        "loaded = [m for m in ('celery', 'kombu', 'redis') if m in sys.modules]; "
        "print(status, loaded); sys.exit(status or len(loaded))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "o.png").is_file()
