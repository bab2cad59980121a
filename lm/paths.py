"""Where the sample data lives (`$LMFORGE_DATA`, else `../shared/data` beside the repo), fsync, and
input files grouped into partitions by size.

In `lm/`, which every other package may import, so library code (rl tasks, benchmarks) and flows share it
without a library package depending on the Prefect layer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

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


def group_by_size(items: list[T], size_of: Callable[[T], int], target: int) -> list[list[T]]:
    """Consecutive items in groups of at most `target` in all (a larger item is a group alone),
    in their order: thousands of small files become a few partitions, each one task, and the
    corpus order is kept."""
    groups: list[list[T]] = []
    size = 0
    for item in items:
        n = size_of(item)
        if not groups or size + n > target:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += n
    return groups


def group_by_bytes(paths: list[Path], target_bytes: int) -> list[list[Path]]:
    """Consecutive input files in groups of at most `target_bytes` on disk (`group_by_size`)."""
    return group_by_size(paths, input_bytes, target_bytes)


def data_root() -> Path:
    return Path(os.environ.get("LMFORGE_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()
