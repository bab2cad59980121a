"""Parquet shards of documents: zstd, a fixed schema, size-capped shards."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from filters.document import Document

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("lang", pa.string()),
        ("lang_score", pa.float32()),
        ("quality_score", pa.float32()),  # the quality classifier's P(reference quality), when one ran
        ("metadata", pa.string()),  # JSON: whatever else the reader or steps recorded
    ]
)


# metadata keys stored as columns of their own rather than in the JSON
COLUMNS = ("lang", "lang_score", "quality_score")


class ParquetShardWriter:
    """Writes `<prefix>-00000.parquet`, ... rolling to a new shard past `max_shard_bytes`."""

    def __init__(
        self, out_dir: Path, prefix: str = "shard", max_shard_bytes: int = 256 * 1024 * 1024, batch_rows: int = 1024
    ):
        self.out_dir, self.prefix = Path(out_dir), prefix
        self.max_shard_bytes, self.batch_rows = max_shard_bytes, batch_rows
        self.paths: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._shard_bytes = 0
        self._buffer: list[Document] = []
        self.docs = self.bytes = 0

    def write(self, doc: Document) -> None:
        self._buffer.append(doc)
        if len(self._buffer) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self._writer is None or self._shard_bytes >= self.max_shard_bytes:
            self._roll()
        meta = [{k: v for k, v in d.metadata.items() if k not in COLUMNS} for d in self._buffer]
        table = pa.table(
            {
                "id": [d.id for d in self._buffer],
                "text": [d.text for d in self._buffer],
                "source": [d.source for d in self._buffer],
                "lang": [d.metadata.get("lang") for d in self._buffer],
                "lang_score": [d.metadata.get("lang_score") for d in self._buffer],
                "quality_score": [d.metadata.get("quality_score") for d in self._buffer],
                "metadata": [json.dumps(m, default=str) if m else None for m in meta],
            },
            schema=SCHEMA,
        )
        assert self._writer is not None
        self._writer.write_table(table)
        n = sum(len(d.text.encode("utf-8", "surrogatepass")) for d in self._buffer)
        self._shard_bytes += n
        self.bytes += n
        self.docs += len(self._buffer)
        self._buffer.clear()

    def _roll(self) -> None:
        if self._writer is not None:
            self._writer.close()
        path = self.out_dir / f"{self.prefix}-{len(self.paths):05d}.parquet"
        self._writer = pq.ParquetWriter(path, SCHEMA, compression="zstd")
        self.paths.append(path)
        self._shard_bytes = 0

    def close(self) -> list[Path]:
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return self.paths

    def __enter__(self) -> ParquetShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_shards(paths: list[Path], columns: list[str] | None = None):
    """Iterate rows (dicts) of Parquet shards in order."""
    for p in paths:
        pf = pq.ParquetFile(p)
        for batch in pf.iter_batches(batch_size=2048, columns=columns):
            yield from batch.to_pylist()


def row_to_document(row: dict) -> Document:
    meta = json.loads(row["metadata"]) if row.get("metadata") else {}
    for key in COLUMNS:
        if row.get(key) is not None:
            meta[key] = row[key]
    return Document(row["text"], row["id"], row["source"], meta)
