"""Streaming readers: one function per format, each yielding `Document`s.

Every reader takes the file path and a `Stats`, and never raises on bad records: a line
that is not JSON, a record with no text, invalid UTF-8, an oversized document or a
corrupt/truncated compressed stream is logged with the file (and line) and counted
under the `read` step, and reading goes on with whatever is left.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import logging
import zlib
from collections.abc import Iterator
from pathlib import Path

from filters.document import Document, Stats

log = logging.getLogger("lmforge.filters.readers")

READ = "read"
# A single document larger than this is counted and skipped: no web page is 5 MB of
# text, and one would dominate memory and the quadratic-ish quality rules.
DEFAULT_MAX_DOC_CHARS = 5_000_000


class InputError(ValueError):
    """An input path that cannot be read at all (missing, unknown format)."""


def expand_inputs(patterns: list[str]) -> list[Path]:
    """Paths/globs/directories → sorted files. Missing inputs fail before any work."""
    files: list[Path] = []
    for pattern in patterns:
        p = Path(pattern)
        if p.is_dir() and not (p / "state.json").is_file():
            for q in sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith(".")):
                try:
                    detect_format(q)
                    files.append(q)
                except InputError:  # a directory may hold other things (WAT files, READMEs)
                    log.warning("%s: not a supported document format; skipped", q)
        elif p.exists():
            files.append(p)
        else:
            hits = sorted(Path(h) for h in glob.glob(pattern, recursive=True))
            if not hits:
                raise InputError(f"input {pattern!r} matches no file: check the path or glob")
            files.extend(hits)
    for f in files:
        detect_format(f)  # unknown formats fail here, before any work
    return files


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


def open_binary(path: Path) -> io.BufferedIOBase:
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if name.endswith((".zst", ".zstd")):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb")))
    return open(path, "rb")


def _decode(raw: bytes, where: str, stats: Stats) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        log.warning("%s: invalid UTF-8 (%s); bad bytes replaced with U+FFFD", where, e.reason)
        stats.add(READ, invalid_utf8_replaced=1)
        return raw.decode("utf-8", errors="replace")


def _emit(doc: Document, where: str, stats: Stats, max_chars: int) -> Iterator[Document]:
    if len(doc.text) > max_chars:
        log.warning("%s: document of %d chars exceeds max_doc_chars=%d; skipped", where, len(doc.text), max_chars)
        stats.add(READ, skipped_too_large=1)
        return
    if not doc.text.strip():
        stats.add(READ, skipped_empty=1)
        return
    stats.add(READ, docs_out=1, bytes_out=len(doc.text.encode("utf-8", "surrogatepass")))
    yield doc


def _guard_stream(path: Path, stats: Stats, gen: Iterator[Document]) -> Iterator[Document]:
    """Turn a corrupt/truncated stream into a counted error: keep what was read before it."""
    try:
        yield from gen
    except (OSError, EOFError, zlib.error, ValueError) as e:
        log.error("%s: unreadable past this point (%s: %s); kept the records read before it", path, type(e).__name__, e)
        stats.add(READ, files_corrupt=1)


# --- formats ------------------------------------------------------------------------------
def read_jsonl(path: Path, stats: Stats, max_chars: int = DEFAULT_MAX_DOC_CHARS, text_key: str = "text") -> Iterator[Document]:
    with open_binary(path) as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            line = _decode(raw, where, stats)
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                log.warning("%s: not valid JSON (%s); record skipped", where, e.msg)
                stats.add(READ, skipped_bad_json=1)
                continue
            text = rec.get(text_key) if isinstance(rec, dict) else None
            if not isinstance(text, str):
                log.warning("%s: record has no string %r field; skipped", where, text_key)
                stats.add(READ, skipped_no_text=1)
                continue
            doc_id = str(rec.get("id", f"{path.name}:{lineno}"))
            meta = {k: v for k, v in rec.items() if k not in (text_key, "id", "source")}
            yield from _emit(Document(text, doc_id, str(rec.get("source", path.name)), meta), where, stats, max_chars)


def read_parquet(path: Path, stats: Stats, max_chars: int = DEFAULT_MAX_DOC_CHARS, text_key: str = "text") -> Iterator[Document]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    if text_key not in pf.schema_arrow.names:
        log.error("%s: no %r column (columns: %s); file skipped", path, text_key, pf.schema_arrow.names)
        stats.add(READ, files_no_text_column=1)
        return
    has_id = "id" in pf.schema_arrow.names
    row = 0
    for batch in pf.iter_batches(batch_size=1024, columns=[text_key] + (["id"] if has_id else [])):
        cols = batch.to_pydict()
        for i, text in enumerate(cols[text_key]):
            row += 1
            if text is None:
                stats.add(READ, skipped_no_text=1)
                continue
            doc_id = str(cols["id"][i]) if has_id else f"{path.name}:{row}"
            yield from _emit(Document(text, doc_id, path.name), f"{path}:row {row}", stats, max_chars)


def read_text(path: Path, stats: Stats, max_chars: int = DEFAULT_MAX_DOC_CHARS, split_blank_lines: bool = False) -> Iterator[Document]:
    """A document per file, or per blank-line-separated block."""
    with open_binary(path) as f:
        raw = f.read(max_chars * 4 + 1)
        if len(raw) > max_chars * 4:
            log.warning("%s: larger than max_doc_chars=%d; skipped", path, max_chars)
            stats.add(READ, skipped_too_large=1)
            return
    text = _decode(raw, str(path), stats).replace("\r\n", "\n")
    if not split_blank_lines:
        yield from _emit(Document(text, path.name, path.name), str(path), stats, max_chars)
        return
    for i, block in enumerate(b for b in text.split("\n\n") if b.strip()):
        yield from _emit(Document(block.strip("\n"), f"{path.name}:{i}", path.name), f"{path}:block {i}", stats, max_chars)


def read_warc(path: Path, stats: Stats, max_chars: int = DEFAULT_MAX_DOC_CHARS) -> Iterator[Document]:
    """WARC responses (HTML → main-content text with resiliparse) and WET conversions."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    with open(path, "rb") as f:
        records = ArchiveIterator(f, record_types=WarcRecordType.response | WarcRecordType.conversion, parse_http=True)
        for rec in records:
            url = rec.headers.get("WARC-Target-URI", "")
            rid = rec.headers.get("WARC-Record-ID", "").strip("<>").removeprefix("urn:uuid:")
            where = f"{path}:{url or rid}"
            body = rec.reader.read()
            if rec.record_type == WarcRecordType.conversion:
                text = _decode(body, where, stats)
            else:
                ctype = rec.http_headers.get("Content-Type", "") if rec.http_headers else ""
                if ctype and "html" not in ctype.lower():
                    stats.add(READ, skipped_not_html=1)
                    continue
                text = extract_plain_text(bytes_to_str(body, detect_encoding(body)), main_content=True)
            yield from _emit(Document(text, rid or url, path.name, {"url": url}), where, stats, max_chars)


def read_hf_dataset(path: Path, stats: Stats, max_chars: int = DEFAULT_MAX_DOC_CHARS, text_key: str = "text") -> Iterator[Document]:
    """A `datasets.Dataset.save_to_disk` folder: Arrow stream files listed in state.json."""
    import pyarrow as pa

    state = json.loads((path / "state.json").read_text())
    row = 0
    for entry in state.get("_data_files", []):
        with pa.memory_map(str(path / entry["filename"])) as source:
            reader = pa.ipc.open_stream(source)
            for batch in reader:
                cols = batch.to_pydict()
                if text_key not in cols:
                    log.error("%s: no %r column; file skipped", path / entry["filename"], text_key)
                    stats.add(READ, files_no_text_column=1)
                    break
                for i, text in enumerate(cols[text_key]):
                    row += 1
                    doc_id = str(cols["id"][i]) if "id" in cols else f"{path.name}:{row}"
                    yield from _emit(Document(text or "", doc_id, path.name), f"{path}:row {row}", stats, max_chars)


def read_documents(path: Path, stats: Stats, max_chars: int = DEFAULT_MAX_DOC_CHARS, split_blank_lines: bool = False) -> Iterator[Document]:
    fmt = detect_format(path)
    stats.add(READ, files=1)
    if path.is_file() and path.stat().st_size == 0:
        log.warning("%s: empty file", path)
        stats.add(READ, files_empty=1)
        return
    if fmt == "jsonl":
        gen = read_jsonl(path, stats, max_chars)
    elif fmt == "parquet":
        gen = read_parquet(path, stats, max_chars)
    elif fmt == "warc":
        gen = read_warc(path, stats, max_chars)
    elif fmt == "hf_dataset":
        gen = read_hf_dataset(path, stats, max_chars)
    else:
        gen = read_text(path, stats, max_chars, split_blank_lines)
    yield from _guard_stream(path, stats, gen)
