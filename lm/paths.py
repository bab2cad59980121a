"""Where the sample data lives (`$LMFORGE_DATA`, else `../shared/data` beside the repo), fsync, and
input files grouped into partitions by size.

In `lm/`, which every other package may import, so library code (rl tasks, benchmarks) and flows share it
without a library package depending on the Prefect layer.
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


def input_bytes(path: Path) -> int:
    """Bytes on disk of an input: a file's size, a directory's (an HF dataset) files summed."""
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def group_by_bytes(paths: list[Path], target_bytes: int) -> list[list[Path]]:
    """Consecutive inputs in groups of at most `target_bytes` (a larger input is a group alone),
    in their order: thousands of small files become a few partitions, each one task, and the
    corpus order is kept."""
    groups: list[list[Path]] = []
    size = 0
    for path in paths:
        n = input_bytes(path)
        if not groups or size + n > target_bytes:
            groups.append([])
            size = 0
        groups[-1].append(path)
        size += n
    return groups


def data_root() -> Path:
    return Path(os.environ.get("LMFORGE_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()
