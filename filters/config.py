"""`CleanConfig`: everything the clean-data stage takes, validated at load. Each step's own config
lives beside its rule (gopher.py, langid.py, pii.py, partitioned_dedup.py, rejects.py,
quality_classifier.py); this module only composes them."""

from __future__ import annotations

import codecs
from typing import Literal

from pydantic import Field, field_validator

from filters.base import StrictConfig
from filters.gopher import GopherQualityConfig, GopherRepetitionConfig
from filters.langid import LanguageConfig
from filters.partitioned_dedup import LineDedupConfig, MinHashDedupConfig
from filters.pii import PIIConfig
from filters.quality_classifier import ClassifierConfig
from filters.rejects import RejectsConfig


class CleanConfig(StrictConfig):
    inputs: list[str] = Field(..., min_length=1, description="files, directories or globs")
    split_text_on_blank_lines: bool = False  # plain text: one doc per file, or per block
    max_doc_chars: int = Field(5_000_000, ge=1)
    encoding: str = Field(
        "utf-8",
        description="how the inputs' bytes are text: utf-8 (invalid bytes replaced and counted), a codec name "
        "(latin-1, cp1252, ...), or auto (charset-normalizer guesses each file's from its first 64 KB)",
    )

    @field_validator("encoding")
    @classmethod
    def _known_codec(cls, value: str) -> str:
        if value != "auto":
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(
                    f"unknown encoding {value!r}: a Python codec name (utf-8, latin-1, ...) or auto"
                ) from None
        return value

    language: LanguageConfig = LanguageConfig()
    pii: PIIConfig = PIIConfig()
    quality: GopherQualityConfig = GopherQualityConfig()
    repetition: GopherRepetitionConfig = GopherRepetitionConfig()
    minhash: MinHashDedupConfig = MinHashDedupConfig()
    line_dedup: LineDedupConfig = LineDedupConfig()
    classifier: ClassifierConfig | None = Field(
        None, description="a learned quality filter after the Gopher rules (filters/quality_classifier.py)"
    )
    extraction: Literal["main_content", "full"] = Field(
        "main_content", description="HTML in WARC records: the main content, or all visible text"
    )
    rejects: RejectsConfig = RejectsConfig()
    shard_max_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    partition_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1,
        description="input bytes per filter partition: consecutive files are grouped up to this size (a larger "
        "file is a partition alone), so a corpus of thousands of small files is a few tasks, not thousands",
    )
    partition_docs: int = Field(
        100_000,
        ge=1_000,
        json_schema_extra={"cache_key": False},
        description="documents per dedup bucket: bounds the memory of each dedup task",
    )
    workers: int = Field(
        2, ge=1, description="processes for the per-file steps", json_schema_extra={"cache_key": False}
    )
