"""Streaming readers: one function per format, each yielding `Document`s.

Every reader takes the file path and a `FileLog`, and never raises on bad records: a line
that is not JSON, a record whose text is not a string, invalid UTF-8, lone surrogates, an
oversized document, a truncated WARC record or a corrupt/truncated compressed stream is
counted under the `read` step and reading goes on with whatever is left. Each kind of
problem is logged once per file, with its count and the first record it hit.
"""

from __future__ import annotations

import codecs
import glob
import gzip
import io
import json
import logging
import zlib
from collections.abc import Iterator
from pathlib import Path

from filters.document import Document, Stats
from filters.extract import html_to_text

log = logging.getLogger("lmforge.filters.readers")

READ = "read"
# A single document larger than this is counted and skipped: no web page is 5 MB of
# text, and one would dominate memory and the quadratic-ish quality rules.
DEFAULT_MAX_DOC_CHARS = 5_000_000
TEXT_FIELD = "text"  # the field (JSONL) or column (Parquet, HF datasets) that holds a document's text


class InputError(ValueError):
    """An input path that cannot be read at all (missing, unknown format)."""


SUPPORTED = "JSONL(.gz/.zst), Parquet, text, WARC/WET or a Hugging Face dataset folder"


def expand_inputs(patterns: list[str], unsupported: list[Path] | None = None) -> list[Path]:
    """Paths/globs/directories → sorted files. Missing inputs fail before any work.

    Files inside a directory that are not a supported format (WAT files, READMEs) are
    skipped, logged once, and appended to `unsupported` so the stage can count them.
    """
    files: list[Path] = []
    skipped: list[Path] = []
    for pattern in patterns:
        p = Path(pattern)
        if p.is_dir() and not (p / "state.json").is_file():
            for q in sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith(".")):
                try:
                    detect_format(q)
                    files.append(q)
                except InputError:
                    skipped.append(q)
        elif p.exists():
            files.append(p)
        else:
            hits = sorted(Path(h) for h in glob.glob(pattern, recursive=True))
            if not hits:
                raise InputError(f"input {pattern!r} matches no file: check the path or glob")
            files.extend(hits)
    for f in files:
        detect_format(f)  # unknown formats fail here, before any work
    if skipped:
        log.warning("%s", skipped_files_line(skipped))
    if unsupported is not None:
        unsupported.extend(skipped)
    return files


def skipped_files_line(skipped: list[Path]) -> str:
    """One line for the input files of other formats, by the paths the user gave."""
    n = len(skipped)
    shown = ", ".join(str(q) for q in skipped[:5]) + (f" and {n - 5} more" if n > 5 else "")
    return (
        f"{n} input file{'s' if n != 1 else ''} not in a supported format ({SUPPORTED}), skipped and counted: {shown}"
    )


def detect_format(path: Path) -> str:
    name = path.name.lower()
    if path.is_dir():
        if (path / "state.json").is_file():
            return "hf_dataset"
        raise InputError(f"{path}: a directory that is not a Hugging Face dataset saved to disk")
    for suffix in (".gz", ".zst", ".zstd"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".warc", ".wet")):
        return "warc"
    if name.endswith((".txt", ".text", ".en", ".md")) or "." not in name or name == "readme":
        return "text"
    raise InputError(f"{path}: unknown input format (expected JSONL, Parquet, text, WARC/WET or an HF dataset dir)")


class FileLog:
    """The record-level problems of one input file: each counted in `stats` under `read`,
    and logged once per kind when the file is done (count + the first record it hit)."""

    def __init__(self, path: Path, stats: Stats, encoding: str = "utf-8"):
        self.path, self.stats = path, stats
        self.first: dict[str, tuple[int, str, str]] = {}
        self.encoding = detect_encoding(path) if encoding == "auto" else encoding

    def note(self, counter: str, where: str, detail: str) -> None:
        self.stats.add(READ, **{counter: 1})
        n, first_where, first_detail = self.first.get(counter, (0, where, detail))
        self.first[counter] = (n + 1, first_where, first_detail)

    def close(self) -> None:
        for counter, (n, where, detail) in self.first.items():
            log.warning("%s: %d × %s (first at %s: %s)", self.path, n, counter, where, detail)


class _ZstdRaw(io.RawIOBase):
    """A zstd stream that raises EOFError when the file ends inside a frame: python-zstandard's
    stream_reader returns a clean EOF there, so a truncated file would read as complete."""

    def __init__(self, path: Path):
        import zstandard

        self._file, self._zstd = open(path, "rb"), zstandard
        self._dobj, self._pending, self._in_frame = zstandard.ZstdDecompressor().decompressobj(), b"", False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = self._file.read(1 << 20)
            if not chunk:
                if self._in_frame:
                    raise EOFError("zstd stream ends inside a frame (truncated file)")
                return 0
            while chunk:
                self._in_frame = True
                self._pending += self._dobj.decompress(chunk)
                chunk = b""
                if self._dobj.eof:  # a frame ended; the rest of the chunk starts the next one
                    chunk, self._in_frame = self._dobj.unused_data, False
                    self._dobj = self._zstd.ZstdDecompressor().decompressobj()
        n = min(len(buffer), len(self._pending))
        buffer[:n], self._pending = self._pending[:n], self._pending[n:]
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


def open_binary(path: Path) -> io.BufferedIOBase:
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if name.endswith((".zst", ".zstd")):
        return io.BufferedReader(_ZstdRaw(path))
    return open(path, "rb")


def detect_encoding(path: Path, sniff_bytes: int = 64 * 1024) -> str:
    """A file's encoding as charset-normalizer guesses it from its first bytes (UTF-8 when it cannot tell)."""
    from charset_normalizer import from_bytes

    with open_binary(path) as f:
        best = from_bytes(f.read(sniff_bytes)).best()
    return best.encoding if best is not None else "utf-8"


def _decode(raw: bytes, where: str, flog: FileLog) -> str:
    try:
        return raw.decode(flog.encoding)
    except UnicodeDecodeError as e:
        counter = "invalid_utf8_replaced" if codecs.lookup(flog.encoding).name == "utf-8" else "invalid_bytes_replaced"
        flog.note(counter, where, f"{e.reason} as {flog.encoding}; bad bytes replaced with U+FFFD")
        return raw.decode(flog.encoding, errors="replace")


def _emit(doc: Document, where: str, flog: FileLog, max_chars: int) -> Iterator[Document]:
    if not isinstance(doc.text, str):
        flog.note("skipped_not_text", where, f"text is {type(doc.text).__name__}, not a string")
        return
    if len(doc.text) > max_chars:
        flog.note("skipped_too_large", where, f"{len(doc.text)} chars > max_doc_chars={max_chars}")
        return
    if not doc.text.strip():
        flog.stats.add(READ, skipped_empty=1)
        return
    try:
        n = len(doc.text.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates ("\ud800" in JSON): no valid UTF-8, no Parquet, no fasttext
        doc.text = doc.text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        flog.note("surrogates_replaced", where, "lone UTF-16 surrogates replaced with U+FFFD")
        n = len(doc.text.encode("utf-8", "replace"))
    flog.stats.add(READ, docs_out=1, bytes_out=n)
    yield doc


def _guard_stream(flog: FileLog, gen: Iterator[Document]) -> Iterator[Document]:
    """Turn a corrupt/truncated stream into a counted error: keep what was read before it."""
    try:
        yield from gen
    except (OSError, EOFError, zlib.error, ValueError) as e:
        log.error(
            "%s: unreadable past this point (%s: %s); kept the records read before it", flog.path, type(e).__name__, e
        )
        flog.stats.add(READ, files_corrupt=1)
    finally:
        flog.close()


# --- formats ------------------------------------------------------------------------------
def _lines(path: Path, start: int, end: int | None, first_line: int) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of the lines that start in [start, end) of the file (`end` None: to its end)."""
    with open_binary(path) as f:
        if start:
            f.seek(start)
        pos = start
        for lineno, raw in enumerate(f, first_line):
            if end is not None and pos >= end:
                return
            pos += len(raw)
            yield lineno, raw


def read_jsonl(
    path: Path,
    flog: FileLog,
    max_chars: int = DEFAULT_MAX_DOC_CHARS,
    start: int = 0,
    end: int | None = None,
    first_line: int = 1,
) -> Iterator[Document]:
    """A record per line; [start, end) with `first_line`: a piece of the file (filters/partitions.py)."""
    for lineno, raw in _lines(path, start, end, first_line):
        if not raw.strip():
            continue
        where = f"{path}:{lineno}"
        line = _decode(raw, where, flog)
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            flog.note("skipped_bad_json", where, e.msg)
            continue
        text = rec.get(TEXT_FIELD) if isinstance(rec, dict) else None
        if text is None:
            flog.note("skipped_no_text", where, f"no {TEXT_FIELD!r} field")
            continue
        doc_id = str(rec.get("id", f"{path.name}:{lineno}"))
        meta = {k: v for k, v in rec.items() if k not in (TEXT_FIELD, "id", "source")}
        yield from _emit(Document(text, doc_id, str(rec.get("source", path.name)), meta), where, flog, max_chars)


def read_parquet(path: Path, flog: FileLog, max_chars: int = DEFAULT_MAX_DOC_CHARS) -> Iterator[Document]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    if TEXT_FIELD not in pf.schema_arrow.names:
        log.error("%s: no %r column (columns: %s); file skipped", path, TEXT_FIELD, pf.schema_arrow.names)
        flog.stats.add(READ, files_no_text_column=1)
        return
    has_id = "id" in pf.schema_arrow.names
    row = 0
    for batch in pf.iter_batches(batch_size=1024, columns=[TEXT_FIELD] + (["id"] if has_id else [])):
        cols = batch.to_pydict()
        for i, text in enumerate(cols[TEXT_FIELD]):
            row += 1
            if text is None:
                flog.note("skipped_no_text", f"{path}:row {row}", "null text")
                continue
            doc_id = str(cols["id"][i]) if has_id else f"{path.name}:{row}"
            yield from _emit(Document(text, doc_id, path.name), f"{path}:row {row}", flog, max_chars)


def read_text(
    path: Path,
    flog: FileLog,
    max_chars: int = DEFAULT_MAX_DOC_CHARS,
    split_blank_lines: bool = False,
    start: int = 0,
    end: int | None = None,
    first_line: int = 1,
) -> Iterator[Document]:
    """A document per file, or per blank-line-separated block (streamed: a file of any size;
    [start, end) with `first_line`: a piece of it, filters/partitions.py)."""
    if split_blank_lines and _newline_is_one_byte(flog.encoding):
        yield from _text_blocks(path, flog, max_chars, start, end, first_line)
        return
    with open_binary(path) as f:
        raw = f.read(max_chars * 4 + 1)
        if len(raw) > max_chars * 4:
            flog.note("skipped_too_large", str(path), f"larger than max_doc_chars={max_chars}")
            return
    text = _decode(raw, str(path), flog).replace("\r\n", "\n")
    if not split_blank_lines:
        yield from _emit(Document(text, path.name, path.name), str(path), flog, max_chars)
        return
    for block, line in _blocks_with_lines(text):
        yield from _emit(Document(block, f"{path.name}:{line}", path.name), f"{path}:{line}", flog, max_chars)


def _blocks_with_lines(text: str) -> Iterator[tuple[str, int]]:
    """(block, the line number it starts at) of text split on blank lines (UTF-16 and other
    encodings whose newline is not one byte: decoded whole)."""
    line = 1
    for part in text.split("\n\n"):
        block = part.strip("\n")
        if block.strip():
            yield block, line + len(part) - len(part.lstrip("\n"))
        line += part.count("\n") + 2


def _newline_is_one_byte(encoding: str) -> bool:
    """Whether a newline is the byte 0x0A (UTF-8, Latin-1, cp1252, Shift-JIS, ...; not UTF-16/32),
    so the bytes can be cut into lines before decoding."""
    return "\n".encode(encoding) == b"\n"


def _text_blocks(
    path: Path, flog: FileLog, max_chars: int, start: int = 0, end: int | None = None, first_line: int = 1
) -> Iterator[Document]:
    """Blank-line-separated blocks of a text file, read a line at a time: the documents of
    splitting the whole text on blank lines, id'd `name:<the line a block starts at>`, without
    ever holding more than one block; a block over `max_chars` is counted and skipped without
    being kept."""
    max_bytes = max_chars * 4
    lines: list[bytes] = []
    size, block_line = 0, first_line

    def block() -> Iterator[Document]:
        where = f"{path}:{block_line}"
        if size > max_bytes:
            flog.note("skipped_too_large", where, f"more than {max_bytes:,} bytes > max_doc_chars={max_chars}")
            return
        text = _decode(b"".join(lines), where, flog).replace("\r\n", "\n").strip("\n")
        if text.strip():
            yield from _emit(Document(text, f"{path.name}:{block_line}", path.name), where, flog, max_chars)

    for lineno, line in _lines(path, start, end, first_line):
        if line in (b"\n", b"\r\n"):  # a blank line ends the block
            yield from block()
            lines, size, block_line = [], 0, lineno + 1
            continue
        if not lines and not size:
            block_line = lineno  # the block starts at its first non-blank line
        size += len(line)
        if size <= max_bytes:  # past it the block is only counted, not kept
            lines.append(line)
    yield from block()


def read_warc(
    path: Path, flog: FileLog, max_chars: int = DEFAULT_MAX_DOC_CHARS, main_content: bool = True
) -> Iterator[Document]:
    """WARC responses (HTML → text, `filters.extract.html_to_text`) and WET conversions."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    with open(path, "rb") as f:
        records = ArchiveIterator(f, record_types=WarcRecordType.response | WarcRecordType.conversion, parse_http=True)
        for rec in records:
            url = rec.headers.get("WARC-Target-URI", "")
            rid = rec.headers.get("WARC-Record-ID", "").strip("<>").removeprefix("urn:uuid:")
            where = f"{path}:{url or rid}"
            body = rec.reader.read()
            if len(body) < rec.content_length:  # fastwarc hands over a record cut off by the file's end
                flog.note("skipped_truncated_record", where, f"{len(body)} of {rec.content_length} bytes")
                continue
            if rec.record_type == WarcRecordType.conversion:
                text = _decode(body, where, flog)
            else:
                ctype = rec.http_headers.get("Content-Type", "") if rec.http_headers else ""
                if ctype and "html" not in ctype.lower():
                    flog.stats.add(READ, skipped_not_html=1)
                    continue
                text = html_to_text(body, main_content)
            yield from _emit(Document(text, rid or url, path.name, {"url": url}), where, flog, max_chars)


def read_hf_dataset(path: Path, flog: FileLog, max_chars: int = DEFAULT_MAX_DOC_CHARS) -> Iterator[Document]:
    """A `datasets.Dataset.save_to_disk` folder: Arrow stream files listed in state.json."""
    import pyarrow as pa

    state = json.loads((path / "state.json").read_text())
    row = 0
    for entry in state.get("_data_files", []):
        with pa.memory_map(str(path / entry["filename"])) as source:
            reader = pa.ipc.open_stream(source)
            for batch in reader:
                cols = batch.to_pydict()
                if TEXT_FIELD not in cols:
                    log.error("%s: no %r column; file skipped", path / entry["filename"], TEXT_FIELD)
                    flog.stats.add(READ, files_no_text_column=1)
                    break
                for i, text in enumerate(cols[TEXT_FIELD]):
                    row += 1
                    doc_id = str(cols["id"][i]) if "id" in cols else f"{path.name}:{row}"
                    yield from _emit(
                        Document("" if text is None else text, doc_id, path.name), f"{path}:row {row}", flog, max_chars
                    )


def read_documents(
    path: Path,
    stats: Stats,
    max_chars: int = DEFAULT_MAX_DOC_CHARS,
    split_blank_lines: bool = False,
    main_content: bool = True,
    encoding: str = "utf-8",
    start: int = 0,
    end: int | None = None,
    first_line: int = 1,
) -> Iterator[Document]:
    """The documents of one input file, or of bytes [start, end) of an uncompressed JSONL or
    blank-line-split text file starting at line `first_line` (a piece, filters/partitions.py:
    the file is counted once, by its first piece)."""
    fmt = detect_format(path)
    if start == 0:
        stats.add(READ, files=1)
        if path.is_file() and path.stat().st_size == 0:
            log.warning("%s: empty file", path)
            stats.add(READ, files_empty=1)
            return
    flog = FileLog(path, stats, encoding if fmt in ("jsonl", "text") else "utf-8")
    if fmt == "jsonl":
        gen = read_jsonl(path, flog, max_chars, start, end, first_line)
    elif fmt == "parquet":
        gen = read_parquet(path, flog, max_chars)
    elif fmt == "warc":
        gen = read_warc(path, flog, max_chars, main_content)
    elif fmt == "hf_dataset":
        gen = read_hf_dataset(path, flog, max_chars)
    else:
        gen = read_text(path, flog, max_chars, split_blank_lines, start, end, first_line)
    yield from _guard_stream(flog, gen)
