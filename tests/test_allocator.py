"""The `neuralens` command re-executes itself under jemalloc where the system has it, else under mimalloc
(neuralens/allocator.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from neuralens import allocator

# What a re-executed process reports: its allocator, the LD_PRELOAD and MALLOC_CONF its children would get,
# and its process id (exec keeps it).
PROBE = (
    "import json, os; from neuralens import allocator; allocator.use_fast_allocator(); "
    "print(json.dumps([allocator.active(), os.environ.get('LD_PRELOAD'), os.environ.get('MALLOC_CONF'), "
    "os.getpid(), allocator.RESTORE in os.environ]))"
)


def run_probe(**env_changes: str | None):
    env = {k: v for k, v in os.environ.items() if k not in (*allocator._USER_VARIABLES, allocator.ENV)}
    for name, value in env_changes.items():
        if value is not None:
            env[name] = value
    child = subprocess.Popen(
        [sys.executable, "-c", PROBE], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    kind, preload, conf, pid, marker = json.loads(out)
    return kind, preload, conf, pid == child.pid, marker


def test_environment_preloads_the_library_and_records_the_users_own_values():
    env = allocator.preload_environment(
        {"PATH": "/bin", "LD_PRELOAD": "/x/libfoo.so"}, "jemalloc", "/lib/libjemalloc.so.2"
    )
    assert env["LD_PRELOAD"] == "/lib/libjemalloc.so.2 /x/libfoo.so"
    assert env["MALLOC_CONF"] == allocator.JEMALLOC_CONF
    assert json.loads(env[allocator.RESTORE]) == {
        "LD_PRELOAD": "/x/libfoo.so",
        "MALLOC_CONF": None,
        "MIMALLOC_PURGE_DELAY": None,
    }
    assert env["PATH"] == "/bin"
    # the user's own jemalloc settings win
    assert allocator.preload_environment({"MALLOC_CONF": "narenas:1"}, "jemalloc", "j.so")["MALLOC_CONF"] == "narenas:1"


def test_mimalloc_keeps_its_freed_pages_unless_the_user_says_otherwise():
    env = allocator.preload_environment({"PATH": "/bin"}, "mimalloc", "/site/cmeel.prefix/lib/libmimalloc.so.3")
    assert env["LD_PRELOAD"] == "/site/cmeel.prefix/lib/libmimalloc.so.3"
    assert env["MIMALLOC_PURGE_DELAY"] == "-1" and "MALLOC_CONF" not in env
    assert (
        allocator.preload_environment({"MIMALLOC_PURGE_DELAY": "10"}, "mimalloc", "m.so")["MIMALLOC_PURGE_DELAY"]
        == "10"
    )


def test_jemalloc_comes_first_and_mimalloc_stands_in_without_it(monkeypatch):
    monkeypatch.setattr(allocator, "find_jemalloc", lambda: "/lib/libjemalloc.so.2")
    monkeypatch.setattr(allocator, "find_mimalloc", lambda: "/site/libmimalloc.so.3")
    assert allocator.find() == ("jemalloc", "/lib/libjemalloc.so.2")
    monkeypatch.setattr(allocator, "find_jemalloc", lambda: None)
    assert allocator.find() == ("mimalloc", "/site/libmimalloc.so.3")
    monkeypatch.setattr(allocator, "find_mimalloc", lambda: None)
    assert allocator.find() is None


def test_restore_puts_the_users_variables_back(monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/lib/libjemalloc.so.2 /x/libfoo.so")
    monkeypatch.setenv("MALLOC_CONF", allocator.JEMALLOC_CONF)
    monkeypatch.setenv(allocator.RESTORE, json.dumps({"LD_PRELOAD": "/x/libfoo.so", "MALLOC_CONF": None}))
    allocator.restore_environment()
    assert os.environ["LD_PRELOAD"] == "/x/libfoo.so"
    assert "MALLOC_CONF" not in os.environ and allocator.RESTORE not in os.environ


def test_an_allocator_the_user_preloads_is_left_alone():
    # ld.so warns about the missing library and runs on; the probe must not have replaced the user's choice
    kind, preload, conf, same_process, marker = run_probe(LD_PRELOAD="libtcmalloc_not_installed.so")
    assert (kind, preload, conf, same_process, marker) == ("system", "libtcmalloc_not_installed.so", None, True, False)


def test_system_choice_keeps_the_process_as_it_is():
    kind, preload, conf, same_process, marker = run_probe(NEURALENS_ALLOCATOR="system")
    assert (kind, preload, conf, same_process, marker) == ("system", None, None, True, False)


@pytest.mark.skipif(allocator.find_jemalloc() is None, reason="no jemalloc on this machine (libjemalloc2)")
def test_the_process_reexecutes_itself_under_jemalloc_and_its_children_do_not_inherit_it():
    kind, preload, conf, same_process, marker = run_probe()
    assert kind == "jemalloc"
    assert same_process  # re-executed in place: the same process id, so signals and exit status are unchanged
    assert (preload, conf, marker) == (None, None, False)  # the environment is the user's again


@pytest.mark.skipif(
    allocator.find_mimalloc() is None, reason="cmeel-mimalloc not installed (Linux x86_64/aarch64 only)"
)
def test_the_mimalloc_that_comes_with_neuralens_loads_and_is_recognised():
    env = {k: v for k, v in os.environ.items() if k not in (*allocator._USER_VARIABLES, allocator.ENV)}
    env = allocator.preload_environment(env, "mimalloc", allocator.find_mimalloc())
    probe = "from neuralens import allocator; print(allocator.active())"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "mimalloc"


def test_the_installed_command_runs_through_the_allocator_choice():
    out = subprocess.run(
        [sys.executable, "-m", "neuralens", "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.startswith("neuralens ")
