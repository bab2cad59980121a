"""clean-data's units of work: input files cut into partitions of about `partition_bytes`.

Small files are grouped, consecutive, up to the target (10,000 one-KB files are one task a
step, not 10,000); a file above it is cut into pieces of about the target when its records
can be found from any byte offset: uncompressed JSONL (a record per line) and text split
on blank lines (a record per block). A piece starts right after a newline (JSONL) or a
blank line (text), so no record straddles two pieces, and knows the line number it starts
at, so record ids (`name:<line>`) are those of reading the file whole. Compressed files,
Parquet, WARC and whole-file text are one piece each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from filters.readers import detect_format, open_binary

SCAN_BYTES = 16 << 20  # read this much at a time while counting lines
BOUNDARY_SCAN_BYTES = 64 << 10  # and while looking for a boundary, usually a few bytes past the target
T = TypeVar("T")


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


@dataclass(frozen=True)
class Piece:
    """Bytes [start, end) of one input file (`end` None: to its end); `first_line` is the line
    number at `start`."""

    path: Path
    start: int = 0
    end: int | None = None
    first_line: int = 1

    @property
    def size(self) -> int:
        return (self.end if self.end is not None else input_bytes(self.path)) - self.start


def splittable(path: Path, split_text_on_blank_lines: bool) -> bool:
    """Whether records can be found from any offset of the file's bytes."""
    if path.is_dir() or path.name.lower().endswith((".gz", ".zst", ".zstd")):
        return False
    fmt = detect_format(path)
    return fmt == "jsonl" or (fmt == "text" and split_text_on_blank_lines)


def _next_boundary(f, offset: int, separators: tuple[bytes, ...]) -> int | None:
    """The offset just past the first of `separators` that ends at or after `offset`; None at the file's end."""
    longest = max(len(s) for s in separators)
    start = max(offset - longest + 1, 0)  # a separator may begin before `offset` and end after it
    f.seek(start)
    carry = b""
    while True:
        chunk = f.read(BOUNDARY_SCAN_BYTES)
        if not chunk:
            return None
        window = carry + chunk
        base = start - len(carry)
        # every hit ends at or after `offset`: the window starts at most len(separator) - 1 before it
        hits = [i + len(s) for s in separators if (i := window.find(s)) != -1]
        if hits:
            return base + min(hits)
        carry = window[-(longest - 1) :] if longest > 1 else b""
        start += len(chunk)


def _count_newlines(f, start: int, end: int) -> int:
    f.seek(start)
    n, left = 0, end - start
    while left > 0:
        chunk = f.read(min(SCAN_BYTES, left))
        if not chunk:
            break
        n += chunk.count(b"\n")
        left -= len(chunk)
    return n


def split_file(path: Path, target_bytes: int, blocks: bool) -> list[Piece]:
    """`path` cut into pieces of about `target_bytes`, each starting after a newline (`blocks`:
    after a blank line); one piece when it is not larger than the target."""
    size = input_bytes(path)
    if size <= target_bytes:
        return [Piece(path)]
    # a blank line: an empty line after a newline, "\n" or "\r\n"
    separators = (b"\n\n", b"\n\r\n") if blocks else (b"\n",)
    pieces: list[Piece] = []
    start, line = 0, 1
    with open_binary(path) as f:
        while start < size:
            end = _next_boundary(f, start + target_bytes, separators) if start + target_bytes < size else None
            if end is None or end >= size:
                pieces.append(Piece(path, start, None, line))
                break
            pieces.append(Piece(path, start, end, line))
            line += _count_newlines(f, start, end)
            start = end
    return pieces


def plan_partitions(files: list[Path], target_bytes: int, split_text_on_blank_lines: bool) -> list[list[Piece]]:
    """Every input as pieces, grouped in order into partitions of at most `target_bytes` (a
    larger piece alone)."""
    pieces = [
        piece
        for path in files
        for piece in (
            split_file(path, target_bytes, blocks=detect_format(path) == "text")
            if splittable(path, split_text_on_blank_lines)
            else [Piece(path)]
        )
    ]
    return group_by_size(pieces, lambda p: p.size, target_bytes)
