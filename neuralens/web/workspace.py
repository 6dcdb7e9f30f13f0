"""The web server's results folders: a fresh root per server, and the removal of those dead servers left.

The ``JobManager`` keeps each job's files in a folder of its own under a root made here, ``neuralens-web-*``
in the temporary folder. A server killed without a chance to clean up (``kill -9``, a power cut) leaves
its root behind, so each root holds a lock file (``server.lock``) that its server keeps locked (``flock``)
for as long as it lives: ``remove_stale_roots`` deletes every root whose lock it can take, and never one
whose owner still holds it. Without flock (Windows) stale roots are left alone.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

try:
    import fcntl
except ImportError:  # Windows: no flock; stale roots are then left alone (never risk a live one)
    fcntl = None

log = logging.getLogger(__name__)

ROOT_PREFIX = "neuralens-web-"
LOCK_NAME = "server.lock"  # inside each root; held (flock) by its server for as long as it runs


def _lock(path: Path, create: bool):
    """An open file on ``path`` holding an exclusive flock, or None when another process holds it (or the
    file is missing and ``create`` is false)."""
    try:
        handle = open(path, "a+" if create else "r+")
    except OSError:
        return None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def make_root(parent: Optional[Path] = None) -> Tuple[Path, object]:
    """A fresh results folder ``neuralens-web-*`` under ``parent`` (the temporary folder by default), with its
    lock file held: returns (folder, open lock file; None without flock). The lock file is locked under a
    temporary name and then renamed into place, so a lock file visible under its own name is always held
    by a living server from the start."""
    root = Path(tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-", dir=parent))
    if fcntl is None:
        return root, None
    pending = root / (LOCK_NAME + ".new")
    handle = _lock(pending, create=True)
    if handle is not None:
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        os.replace(pending, root / LOCK_NAME)
    return root, handle


def remove_stale_roots(parent: Optional[Path] = None) -> List[Path]:
    """Delete the results folders of servers that died without cleaning up: every ``neuralens-web-*`` folder
    under ``parent`` whose lock file nobody holds. Folders without a lock file (being made right now, or
    left by an older version) and folders whose server is alive are left alone. Returns those deleted."""
    if fcntl is None:
        return []
    parent = Path(parent or tempfile.gettempdir())
    removed = []
    try:
        candidates = [p for p in parent.iterdir() if p.name.startswith(ROOT_PREFIX)]
    except OSError:
        return []
    for root in candidates:
        try:
            if root.is_symlink() or not root.is_dir() or root.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        handle = _lock(root / LOCK_NAME, create=False)
        if handle is None:
            continue  # a live server holds it, or it has no lock file
        try:
            shutil.rmtree(root, ignore_errors=True)
            removed.append(root)
            log.info("removed %s, left by a server that is no longer running", root)
        finally:
            handle.close()
    return removed
