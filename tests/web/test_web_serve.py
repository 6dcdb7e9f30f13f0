"""`neuralens serve` as a real process: it prints its address, serves page and API, guards its Host
header and its token, stops cleanly on Ctrl-C and deletes its results folder when it stops."""

from __future__ import annotations

import signal

import httpx
from web_helpers import start_server


def test_serve_runs_guards_and_cleans_up(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    process, url = start_server(tmp_path, env={"TMPDIR": str(temp), "NEURALENS_TOKEN": "serve-test-token"})
    try:
        assert url.startswith("http://127.0.0.1:")
        assert "<title>neuralens</title>" in httpx.get(url).text
        assert httpx.get(url + "api/info").status_code == 401
        info = httpx.get(url + "api/info", headers={"Authorization": "Bearer serve-test-token"})
        assert info.status_code == 200 and info.json()["limits"]["preview_every"] == 2
        rebound = httpx.get(url + "api/info", headers={"Host": "attacker.example"})
        assert rebound.status_code == 400 and "Host" in rebound.json()["error"]
        assert [p.name.startswith("neuralens-web-") for p in temp.iterdir()] == [True]
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        status = process.wait(timeout=30)
    assert status == 0
    assert "stopped" in process.stdout.read()
    assert list(temp.iterdir()) == []  # results are kept only while the server runs


def test_a_killed_servers_folder_is_removed_by_the_next_server_never_a_live_ones(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    legacy = temp / "neuralens-web-legacy"  # no lock file (made by an older version): its owner is unknown
    legacy.mkdir()
    env = {"TMPDIR": str(temp)}
    started = []

    def serve(name: str):
        (tmp_path / name).mkdir()  # its own gallery
        before = set(temp.iterdir())
        process, _ = start_server(tmp_path / name, env=env)
        started.append(process)
        (folder,) = [p for p in temp.iterdir() if p not in before]
        assert (folder / "server.lock").is_file()
        return process, folder

    try:
        first, first_folder = serve("a")
        _, second_folder = serve("b")
        assert first_folder.is_dir()  # a live server's folder is never touched
        first.kill()  # kill -9: no chance to clean up
        first.wait(timeout=30)
        assert first_folder.is_dir()
        _, third_folder = serve("c")
        assert not first_folder.exists()  # the dead server's folder is gone...
        assert second_folder.is_dir() and third_folder.is_dir() and legacy.is_dir()  # ...and only that one
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=30)
    assert sorted(p.name for p in temp.iterdir()) == ["neuralens-web-legacy"]
