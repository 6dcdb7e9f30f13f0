"""Where neuralens keeps what it can compute again (exported networks, image features): one folder for all."""

from __future__ import annotations

import os
from pathlib import Path


def cache_folder() -> Path:
    """$NEURALENS_CACHE, else $XDG_CACHE_HOME/neuralens, else ~/.cache/neuralens (not created here)."""
    if os.environ.get("NEURALENS_CACHE"):
        return Path(os.environ["NEURALENS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "neuralens"
