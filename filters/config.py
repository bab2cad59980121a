"""`CleanConfig`: everything the clean-data stage takes, validated at load."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LanguageConfig(_Strict):
    enabled: bool = True
    languages: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    threshold: float = Field(0.65, ge=0, le=1)  # FineWeb's


class PIIConfig(_Strict):
    enabled: bool = True
    emails: bool = True
    phones: bool = True
    ips: bool = True


class QualityConfig(_Strict):
    """Gopher quality rules; set a threshold to null to switch that rule off."""

    enabled: bool = True
    min_words: int | None = 50
    max_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    min_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = 2


class RepetitionConfig(_Strict):
    """Gopher repetition rules with datatrove's defaults."""

    enabled: bool = True
    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    top_n_grams: list[tuple[int, float]] = [(2, 0.2), (3, 0.18), (4, 0.16)]
    dup_n_grams: list[tuple[int, float]] = [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)]


class MinHashDedupConfig(_Strict):
    enabled: bool = True
    ngram: int = Field(5, ge=1)
    bands: int = Field(14, ge=1)
    rows: int = Field(8, ge=1)
    threshold: float = Field(0.8, gt=0, le=1)
    seed: int = 1


class LineDedupConfig(_Strict):
    enabled: bool = True
    mode: Literal["keep_first", "drop_all"] = "keep_first"
    min_words_after: int = Field(5, ge=0)  # docs left shorter than this are dropped, counted


class CleanConfig(_Strict):
    inputs: list[str] = Field(..., min_length=1, description="files, directories or globs")
    split_text_on_blank_lines: bool = False  # plain text: one doc per file, or per block
    max_doc_chars: int = Field(5_000_000, ge=1)
    language: LanguageConfig = LanguageConfig()
    pii: PIIConfig = PIIConfig()
    quality: QualityConfig = QualityConfig()
    repetition: RepetitionConfig = RepetitionConfig()
    minhash: MinHashDedupConfig = MinHashDedupConfig()
    line_dedup: LineDedupConfig = LineDedupConfig()
    shard_max_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    workers: int = Field(2, ge=1, description="processes for the per-file steps")

    @model_validator(mode="after")
    def _check(self) -> CleanConfig:
        q = self.quality
        if q.min_words is not None and q.max_words is not None and q.min_words > q.max_words:
            raise ValueError(f"quality.min_words ({q.min_words}) > quality.max_words ({q.max_words})")
        return self
