"""Inputs checked before any work starts: what can be known from paths and the first bytes of each file.

A stage command runs this before Prefect starts: a missing path, an empty directory, a
directory with no supported file, or inputs of which not one file is readable fail with
one line naming the path as the user gave it. A file that is bad beside good ones is a
warning here and is counted by the stage (a mixed directory keeps every good document).
What needs the whole file (a truncated stream, a bad record at line 10,000) stays the
readers' job.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filters.document import Stats
from filters.readers import SUPPORTED, TEXT_FIELD, InputError, detect_format, expand_inputs, read_documents
from filters.readers import log as readers_log

SNIFF_BYTES = 64 * 1024
MAGIC = {".gz": b"\x1f\x8b", ".zst": b"\x28\xb5\x2f\xfd", ".zstd": b"\x28\xb5\x2f\xfd"}


# C0 control characters other than whitespace: text has almost none, binary data many
CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\f\v") + b"\x7f"
BINARY_CONTROL_SHARE = 0.1


def sniff(path: Path) -> str | None:
    """What is wrong with a file, judged from its first bytes (and, for JSON lines, its whole first record);
    None when it looks readable."""
    fmt = detect_format(path)
    if fmt == "hf_dataset":
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if not head:
        return "is empty"
    suffix = path.suffix.lower()
    if suffix in MAGIC:
        return (
            None
            if head.startswith(MAGIC[suffix])
            else f"is not {suffix[1:]}-compressed data (its first bytes: {head[:8].hex(' ')})"
        )
    if fmt == "parquet":
        return None if head.startswith(b"PAR1") else "is not a Parquet file (no PAR1 header)"
    if fmt == "warc":
        return None if head.lstrip().startswith(b"WARC/") else "is not a WARC/WET file (no WARC/ header)"
    if is_binary(head):
        return f"holds binary data, not {'JSON lines' if fmt == 'jsonl' else 'text'}"
    if fmt == "jsonl":
        return _first_record_problem(path)
    return None


def is_binary(head: bytes) -> bool:
    """Binary by content: a NUL byte, or a share of control characters no text has. Text in another
    encoding than UTF-8 (Latin-1, a stray byte) is text: the readers decode it with replacement and count it."""
    return b"\x00" in head or sum(head.count(c) for c in CONTROL_BYTES) > BINARY_CONTROL_SHARE * len(head)


def utf8_problem(path: Path) -> str | None:
    """Where a plain-text file stops being UTF-8 in its first bytes; None when it is UTF-8 there."""
    if path.suffix.lower() in MAGIC or detect_format(path) in ("parquet", "warc", "hf_dataset"):
        return None
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    complete = len(head) < SNIFF_BYTES
    for cut in (0,) if complete else (0, 1, 2, 3):  # a read cut inside a character is not an error
        try:
            head[: len(head) - cut].decode("utf-8")
            return None
        except UnicodeDecodeError as e:
            error = e
    return f"is not valid UTF-8 (byte {head[error.start]:#04x} at offset {error.start})"


def _first_record_problem(path: Path) -> str | None:
    """The first non-blank line, read whole however long (a record can be a book), must be a JSON object
    with a text field."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):  # noqa: B007  the number of the line the loop stops at
            if raw.strip():
                break
        else:
            return None
    line = raw.decode("utf-8", errors="replace")
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        return f"line {number} is not JSON ({e.msg})"
    if not isinstance(record, dict):
        return f"line {number} is a JSON {type(record).__name__}, not an object with a {TEXT_FIELD!r} field"
    if TEXT_FIELD not in record:
        return f"line {number} has no {TEXT_FIELD!r} field (its fields: {', '.join(record) or 'none'})"
    return None


def preflight_inputs(patterns: list[str]) -> tuple[list[Path], list[str]]:
    """The input files, and one warning per bad file beside good ones; InputError (one line) when the
    inputs hold nothing readable."""
    for pattern in patterns:
        p = Path(pattern)
        if p.is_dir() and not (p / "state.json").is_file():
            if not any(q.is_file() and not q.name.startswith(".") for q in p.rglob("*")):  # stops at the first file
                raise InputError(f"{pattern}: an empty directory: give files or directories that hold {SUPPORTED}")
    unsupported: list[Path] = []
    with _readers_quiet():
        files = expand_inputs(patterns, unsupported)
    if not files:
        found = ", ".join(str(q) for q in unsupported[:5])
        raise InputError(f"{', '.join(patterns)}: no supported input file ({SUPPORTED}); found only: {found}")
    problems = {f: problem for f in files if (problem := sniff(f)) is not None}
    if len(problems) == len(files):
        shown = "; ".join(f"{f} {why}" for f, why in list(problems.items())[:3])
        raise InputError(
            f"nothing readable in the inputs: {shown}"
            + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
        )
    warnings = [f"{f} {why}: it will be counted and skipped" for f, why in problems.items()]
    warnings += [
        f"{f} {why}: it is read with the bad bytes replaced by U+FFFD (counted as invalid_utf8_replaced; "
        "set the input's encoding if it is another one)"
        for f in files
        if f not in problems and (why := utf8_problem(f)) is not None
    ]
    # files of other formats: the stage's own log says so, once (filters/readers.skipped_files_line)
    return files, warnings


def count_documents(files: list[Path], at_most: int, split_text_on_blank_lines: bool = True) -> int:
    """Documents in `files`, reading no further than the `at_most`-th (as the tokenize stage reads them)."""
    found, stats = 0, Stats()
    with _readers_quiet():
        for f in files:
            for _ in read_documents(f, stats, split_blank_lines=split_text_on_blank_lines):
                found += 1
                if found >= at_most:
                    return found
    return found


@contextmanager
def _readers_quiet() -> Iterator[None]:
    """The readers log skipped files and bad records for a stage's run log; before any run, the
    preflight says what matters in its own lines (and Prefect's API log handler has no run to log to)."""
    previous = readers_log.level
    readers_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        readers_log.setLevel(previous)
