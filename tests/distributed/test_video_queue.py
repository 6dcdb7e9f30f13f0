"""`neuralens video ... --broker URL`: a whole video on a worker process, the same frames as in-process, its
progress over frames; folders of frames are refused with the queue."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from neuralens.video.synthetic import pan_clip, write_clip


def _frames(path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_a_video_on_a_worker_matches_in_process(
    two_workers, redis_url, storage_url, photos, run_cli, tmp_path, threads_of_a_worker
):
    with Image.open(photos[0]) as photo:
        frames, _ = pan_clip(photo.convert("RGB").resize((96, 72)), (64, 48), 6, (3, 1))
    clip = tmp_path / "clip.mp4"
    write_clip(clip, frames)
    flags = ["--model", "starry-night", "--consistency", "none", "--quiet"]
    report = tmp_path / "report.json"
    queue = ["--broker", redis_url, "--storage", storage_url, "--report", report]
    code, out, err = run_cli("video", clip, *flags, "-o", tmp_path / "queued.mp4", *queue)
    assert code == 0, err
    assert "wrote" in out
    assert run_cli("video", clip, *flags, "-o", tmp_path / "local.mp4")[0] == 0
    queued, local = _frames(tmp_path / "queued.mp4"), _frames(tmp_path / "local.mp4")
    assert queued.shape == local.shape and queued.shape[0] == 6
    differ = queued != local  # said in full if it fails
    assert not differ.any(), (
        f"{int(differ.sum())} values differ, by up to {int(np.abs(queued.astype(int) - local.astype(int)).max())}, "
        f"in frames {sorted(set(np.nonzero(differ)[0].tolist()))}"
    )
    data = json.loads(report.read_text())
    assert data["frames"] == 6 and data["job"]["status"] == "done"
    assert data["job"]["progress"]["iteration"] == 6  # progress counted frames


def test_frame_folders_are_refused_with_the_queue(redis_url, storage_url, photos, cli_error, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.open(photos[0]).save(folder / "0001.png")
    message = cli_error(
        "video",
        folder,
        "--model",
        "starry-night",
        "-o",
        tmp_path / "o.mp4",
        "--broker",
        redis_url,
        "--storage",
        storage_url,
    )
    assert "folders of frames are not available with --broker" in message
