"""Where the sample data lives (`$LMFORGE_DATA`, else `../shared/data` beside the repo), and fsync.

On the ground floor (common/), so every package, benchmarks and flows share it without depending on each other.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def fsync_path(path: Path) -> None:
    """Flush a file, or a directory's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def data_root() -> Path:
    return Path(os.environ.get("LMFORGE_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()
