"""`CleanConfig`: everything the clean-data stage takes, validated at load."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from filters.quality_classifier import ClassifierConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LanguageConfig(_Strict):
    enabled: bool = True
    languages: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    threshold: float = Field(0.65, ge=0, le=1)  # FineWeb's

    @field_validator("languages")
    @classmethod
    def _known(cls, languages: list[str]) -> list[str]:
        from filters.langid import model_labels

        unknown = sorted(set(languages) - model_labels())
        if unknown:
            raise ValueError(
                f"unknown to the language-ID model (lid.176, ISO 639 codes such as en, de, zh): {', '.join(unknown)}"
            )
        return languages


class PIIConfig(_Strict):
    enabled: bool = True
    emails: bool = True
    phones: bool = True
    ips: bool = True


class GopherQualityConfig(_Strict):
    """Gopher quality rules; set a threshold to null to switch that rule off."""

    enabled: bool = True
    min_words: int | None = Field(50, ge=0)
    max_words: int | None = Field(100_000, ge=0)
    min_avg_word_length: float | None = Field(3, ge=0)
    max_avg_word_length: float | None = Field(10, ge=0)
    max_symbol_word_ratio: float | None = Field(0.1, ge=0, le=1)
    max_bullet_lines_ratio: float | None = Field(0.9, ge=0, le=1)
    max_ellipsis_lines_ratio: float | None = Field(0.3, ge=0, le=1)
    min_alpha_words_ratio: float | None = Field(0.8, ge=0, le=1)
    min_stop_words: int | None = Field(2, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> GopherQualityConfig:
        for low, high in (("min_words", "max_words"), ("min_avg_word_length", "max_avg_word_length")):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{low} ({lo}) > {high} ({hi})")
        return self


class GopherRepetitionConfig(_Strict):
    """Gopher repetition rules with datatrove's defaults."""

    enabled: bool = True
    dup_line_frac: float | None = Field(0.3, ge=0, le=1)
    dup_para_frac: float | None = Field(0.3, ge=0, le=1)
    dup_line_char_frac: float | None = Field(0.2, ge=0, le=1)
    dup_para_char_frac: float | None = Field(0.2, ge=0, le=1)
    top_n_grams: list[tuple[int, float]] = [(2, 0.2), (3, 0.18), (4, 0.16)]
    dup_n_grams: list[tuple[int, float]] = [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)]

    @field_validator("top_n_grams", "dup_n_grams")
    @classmethod
    def _ngram_fractions(cls, pairs: list[tuple[int, float]]) -> list[tuple[int, float]]:
        for n, frac in pairs:
            if n < 1 or not 0 <= frac <= 1:
                raise ValueError(f"({n}, {frac}): n-gram size must be >= 1 and its fraction in [0, 1]")
        return pairs


class MinHashDedupConfig(_Strict):
    enabled: bool = True
    # 5-gram shingles; 14 bands × 8 rows as FineWeb: P(candidate) = 1-(1-s^8)^14 is 0.92 at s=0.8 and 0.99 at s=0.9;
    # `threshold` is the true Jaccard a candidate pair needs to count as a duplicate
    ngram: int = Field(5, ge=1)
    bands: int = Field(14, ge=1)
    rows: int = Field(8, ge=1)
    threshold: float = Field(0.8, gt=0, le=1)
    seed: int = 1
    # the shingle hash family: xxh64 (compiled, one call a document) or sha1, datasketch's own,
    # whose signatures equal `MinHash.bulk`'s (to reproduce artifacts made before xxh64)
    hash: Literal["xxh64", "sha1"] = "xxh64"


class LineDedupConfig(_Strict):
    enabled: bool = True
    mode: Literal["keep_first", "drop_all"] = "keep_first"
    min_words_after: int = Field(5, ge=0)  # docs left shorter than this are dropped, counted


class RejectsConfig(_Strict):
    """Keep a sample of what each rule dropped (filters/rejects.py)."""

    enabled: bool = False
    max_per_reason: int = Field(100, ge=1, description="documents kept per (rule, reason) and input file")


class CleanConfig(_Strict):
    inputs: list[str] = Field(..., min_length=1, description="files, directories or globs")
    split_text_on_blank_lines: bool = False  # plain text: one doc per file, or per block
    max_doc_chars: int = Field(5_000_000, ge=1)
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
    partition_docs: int = Field(
        100_000,
        ge=1_000,
        json_schema_extra={"cache_key": False},
        description="documents per dedup bucket: bounds the memory of each dedup task",
    )
    workers: int = Field(
        2, ge=1, description="processes for the per-file steps", json_schema_extra={"cache_key": False}
    )
