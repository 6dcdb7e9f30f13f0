"""The memory allocator: the `neuralens` command runs under jemalloc where the system has it, else under
mimalloc (its library comes with neuralens on Linux, from the ``cmeel-mimalloc`` wheel).

Why: torch frees every activation and gradient after each evaluation and allocates them again for the next.
glibc's malloc gives any block over 32 MiB back to the kernel at once (mmap/munmap), so at print sizes every
evaluation page-faults its whole working set again. Measured on the 2-core AMD EPYC with AVX512-BF16 (one
evaluation of the style objective, bf16 channels-last; benchmarks/results/style_speed_amd_avx512bf16_allocators.md):
at 2048x1536 px 3.5 million page faults and 15.6 s per evaluation with glibc, 12.3 s with jemalloc keeping freed
pages (peak RSS +3 %), so the cost per pixel equals that at 512 px (0.81 vs 0.77 s there). On the 2-core Xeon with
AMX the gap is wider (benchmarks/README.md section 13): 9.0-11.2 s with glibc, 3.9 s with jemalloc, 3.6-3.7 s with
mimalloc keeping freed pages (``MIMALLOC_PURGE_DELAY=-1``; peak 5.0 GB against jemalloc's 4.6 and glibc's 4.5;
with mimalloc's default purge delay 5.0-5.9 s). glibc's own switch (no mmap at all, ``MALLOC_MMAP_MAX_=0``) was
as fast but raised peak memory by 28 %; transparent huge pages for glibc's blocks did not help (fewer faults, more
time zeroing). jemalloc comes first for its lower peak; mimalloc is what a plain ``pip install`` brings.

An allocator can only be chosen before a process starts (``LD_PRELOAD``), so :func:`use_fast_allocator`
re-executes the command once, with the same arguments and process id, and the re-executed process puts the
environment back as the user had it, so the programs it starts are not affected. ``NEURALENS_ALLOCATOR=system``
turns this off; without either library nothing changes. Python programs that import neuralens choose for
themselves, e.g. ``LD_PRELOAD=libjemalloc.so.2 python my_script.py``.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import sys
import sysconfig
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

ENV = "NEURALENS_ALLOCATOR"
CHOICES = ("auto", "system")  # auto: jemalloc where found, else mimalloc, else the system's malloc
# Keep freed pages mapped for reuse (no decay); large blocks in the ordinary arenas (oversize_threshold 0), not
# in the one that jemalloc empties at once. A decay of 10 s already gave every page fault back at 2048 px.
JEMALLOC_CONF = "oversize_threshold:0,dirty_decay_ms:-1,muzzy_decay_ms:-1"
# Each allocator's settings (environment variables), set where the user has not set them.
SETTINGS: Dict[str, Dict[str, str]] = {
    "jemalloc": {"MALLOC_CONF": JEMALLOC_CONF},
    "mimalloc": {"MIMALLOC_PURGE_DELAY": "-1"},  # never give freed pages back (see the module's note)
}
RESTORE = "NEURALENS_ALLOCATOR_RESTORE"  # set for the re-executed process: the user's own variables, as JSON
_USER_VARIABLES = ("LD_PRELOAD", *sorted({name for settings in SETTINGS.values() for name in settings}))
_LIBRARY = "libjemalloc.so.2"


def find_jemalloc() -> Optional[str]:
    """The path of the system's jemalloc shared library, or None where there is none (or not on Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    folders = [Path(sys.prefix) / "lib", Path("/usr/local/lib"), Path("/usr/lib64"), Path("/usr/lib")]
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch:
        folders.insert(1, Path("/usr/lib") / multiarch)
    for folder in folders:
        if (folder / _LIBRARY).is_file():
            return str(folder / _LIBRARY)
    return ctypes.util.find_library("jemalloc")


def find_mimalloc() -> Optional[str]:
    """The path of mimalloc's shared library from the ``cmeel-mimalloc`` wheel in this environment (a dependency
    of neuralens on Linux), or None where there is none (or not on Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    paths = sysconfig.get_paths()
    for folder in dict.fromkeys(Path(paths[key]) / "cmeel.prefix" / "lib" for key in ("purelib", "platlib")):
        found = sorted(folder.glob("libmimalloc.so*"), key=lambda p: len(p.name))
        if found:
            return str(found[0])
    return None


def find() -> Optional[Tuple[str, str]]:
    """(name, library path) of the allocator a command started now would run under: jemalloc where the system
    has it, else mimalloc; None when neither is there."""
    library = find_jemalloc()
    if library:
        return "jemalloc", library
    library = find_mimalloc()
    return ("mimalloc", library) if library else None


def preload_environment(environ: Mapping[str, str], name: str, library: str) -> Dict[str, str]:
    """``environ`` with ``library`` (allocator ``name``) preloaded and its SETTINGS, plus a record of the user's own
    values of those variables for the new process to put back. A user's own settings are kept."""
    env = dict(environ)
    env[RESTORE] = json.dumps({variable: environ.get(variable) for variable in _USER_VARIABLES})
    env["LD_PRELOAD"] = " ".join(p for p in (library, environ.get("LD_PRELOAD", "")) if p)
    for variable, value in SETTINGS[name].items():
        env.setdefault(variable, value)
    return env


def restore_environment() -> None:
    """In a re-executed process: put ``LD_PRELOAD`` and the allocator's settings back as the user had them, so the
    programs this one starts get the user's environment (the allocator, already loaded, stays in this process)."""
    saved = os.environ.pop(RESTORE, None)
    if saved is None:
        return
    for name, value in json.loads(saved).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def active() -> str:
    """'jemalloc' or 'mimalloc' when that library is loaded in this process, else 'system'."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "system"
    return next((name for name in SETTINGS if f"lib{name}" in maps), "system")


def library_to_preload() -> Optional[Tuple[str, str]]:
    """(name, library path) of the allocator a command started now would run under, or None: the user chose
    ``NEURALENS_ALLOCATOR=system``, already preloads an allocator of their own (jemalloc, tcmalloc, mimalloc: any
    ``LD_PRELOAD`` entry with "malloc" in its name), or neither library is installed. An unknown choice is
    ignored (auto)."""
    if os.environ.get(ENV, "auto") == "system" or "malloc" in os.environ.get("LD_PRELOAD", ""):
        return None
    return find()


def use_fast_allocator() -> None:
    """Re-execute this process under jemalloc or mimalloc (see the module's docstring) where
    :func:`library_to_preload` names one. Call it first thing in a command's entry point: when it re-executes, it
    does not return."""
    if RESTORE in os.environ:  # this is the re-executed process
        restore_environment()
        return
    choice = library_to_preload()
    argv = getattr(sys, "orig_argv", None)
    if not choice or not argv:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, argv, preload_environment(os.environ, *choice))
    except OSError:  # cannot re-execute (e.g. no such interpreter path): go on as we are
        return
