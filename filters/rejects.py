"""Inspectable rejects: a capped sample of the documents each rule dropped, as Parquet.

datatrove's exclusion writers showed the value: a threshold is only as good as what it
throws away, and the counts in stats.json do not show that. With `rejects.enabled`,
clean-data writes `rejects/rejects-<part>-*.parquet` into its artifact: the usual document
columns, with `rejected_by` (the rule) and `reason` in `metadata`, at most
`max_per_reason` documents per (rule, reason) and input file.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pydantic import Field

from filters.base import StrictConfig
from filters.document import Document
from filters.writer import ParquetShardWriter


class RejectsConfig(StrictConfig):
    """Keep a sample of what each rule dropped (filters/rejects.py)."""

    enabled: bool = False
    max_per_reason: int = Field(100, ge=1, description="documents kept per (rule, reason) and input file")


class RejectsWriter:
    def __init__(self, out_dir: Path, prefix: str, max_per_reason: int):
        self.writer = ParquetShardWriter(out_dir, prefix)
        self.max_per_reason = max_per_reason
        self.kept: Counter[tuple[str, str]] = Counter()

    def __call__(self, doc: Document, rule: str, reason: str) -> None:
        if self.kept[(rule, reason)] >= self.max_per_reason:
            return
        self.kept[(rule, reason)] += 1
        self.writer.write(
            Document(doc.text, doc.id, doc.source, {**doc.metadata, "rejected_by": rule, "reason": reason})
        )

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.writer.close()

    @property
    def paths(self) -> list[Path]:
        return self.writer.paths
