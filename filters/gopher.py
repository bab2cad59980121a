"""The Gopher quality and repetition rules (Rae et al. 2021, arXiv:2112.11446, App. A.1.1).

Each rule is an early return with a prefixed reason; thresholds come from the filter's
config (`GopherQualityConfig`, `GopherRepetitionConfig` in filters/config.py, where the defaults live:
the paper's values, datatrove's for repetition), and `None` switches a rule off. Words are
whitespace-separated tokens, as in the paper.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import NamedTuple

from pydantic import Field, field_validator, model_validator

from common.codepoints import every_code_point
from filters.base import Filter, StrictConfig
from filters.document import Document

try:
    from filters import _gopher
except ImportError:  # no C++ compiler at install time: the Python rules below, same fractions
    _gopher = None

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
BULLETS = ("●", "•", "*", "-", "‣", "◦", "⁃", "∙")
ELLIPSES = ("...", "…")
PUNCT_STRIP = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~“”‘’«»…"


# a whitespace-separated word (re's \s is str.split's whitespace) holding an ASCII letter; the
# lookahead scans each word once, so a long word without letters costs linear time
_ASCII_ALPHA_WORD = re.compile(r"(?<!\S)(?=\S*[A-Za-z])\S+")


class GopherQualityConfig(StrictConfig):
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


class GopherRepetitionConfig(StrictConfig):
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


def count_alpha_words(text: str, words: list[str]) -> int:
    """Words of `text` (its `split()`) with at least one alphabetic character. ASCII text (in
    ASCII the alphabetic characters are the 52 letters) is counted by one regex pass instead
    of a Python loop over every character."""
    if text.isascii():
        return len(_ASCII_ALPHA_WORD.findall(text))
    return sum(1 for w in words if any(c.isalpha() for c in w))


class GopherQualityFilter(Filter):
    name = "gopher_quality"

    def __init__(self, cfg: GopherQualityConfig = GopherQualityConfig()):
        self.cfg = cfg

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        counts = word_counts(text)
        n = counts.words
        # "the number of words in the document is between 50 and 100,000"
        if self.cfg.min_words is not None and n < self.cfg.min_words:
            return False, "gopher_below_min_words"
        if self.cfg.max_words is not None and n > self.cfg.max_words:
            return False, "gopher_above_max_words"
        # mean word length (punctuation stripped) between 3 and 10 characters
        avg = counts.non_symbol_chars / max(counts.non_symbol_words, 1)
        if self.cfg.min_avg_word_length is not None and avg < self.cfg.min_avg_word_length:
            return False, "gopher_below_avg_word_length"
        if self.cfg.max_avg_word_length is not None and avg > self.cfg.max_avg_word_length:
            return False, "gopher_above_avg_word_length"
        # symbol-to-word ratio <= 0.1 for the hash symbol and the ellipsis
        if self.cfg.max_symbol_word_ratio is not None:
            symbols = text.count("#") + text.count("...") + text.count("…")
            if symbols / max(n, 1) > self.cfg.max_symbol_word_ratio:
                return False, "gopher_symbol_word_ratio"
        lines = [ln for ln in text.splitlines() if ln.strip()] or [text]
        # <= 90% of lines start with a bullet point
        if self.cfg.max_bullet_lines_ratio is not None:
            bullets = sum(1 for ln in lines if ln.lstrip().startswith(BULLETS))
            if bullets / len(lines) > self.cfg.max_bullet_lines_ratio:
                return False, "gopher_bullet_lines_ratio"
        # <= 30% of lines end with an ellipsis
        if self.cfg.max_ellipsis_lines_ratio is not None:
            ellipsis = sum(1 for ln in lines if ln.rstrip().endswith(ELLIPSES))
            if ellipsis / len(lines) > self.cfg.max_ellipsis_lines_ratio:
                return False, "gopher_ellipsis_lines_ratio"
        # >= 80% of words contain at least one alphabetic character
        if (
            self.cfg.min_alpha_words_ratio is not None
            and counts.alpha_words / max(n, 1) < self.cfg.min_alpha_words_ratio
        ):
            return False, "gopher_alpha_words_ratio"
        # contains at least two of the stop words: the, be, to, of, and, that, have, with
        if self.cfg.min_stop_words is not None and counts.stop_words < self.cfg.min_stop_words:
            return False, "gopher_stop_words"
        return True


class WordCounts(NamedTuple):
    words: int  # str.split() words
    non_symbol_words: int  # words not empty once PUNCT_STRIP is stripped from both ends
    non_symbol_chars: int  # their characters, stripped
    alpha_words: int  # words with an alphabetic character (str.isalpha)
    stop_words: int  # distinct STOP_WORDS among the stripped words, lower-cased


def word_counts(text: str, compiled: bool | None = None) -> WordCounts:
    """The quality rule's word counts: one compiled call when it is built (`filters/_gopher.cpp`),
    else the Python below (the specification); `compiled` forces one path (tests)."""
    if compiled if compiled is not None else _gopher is not None:
        if _gopher is None:
            raise RuntimeError("filters._gopher is not built: `pip install -e .` builds it (needs g++)")
        return WordCounts(
            *_gopher.quality_counts(text.encode("utf-8", "surrogatepass"), PUNCT_STRIP, _alpha_table(), _STOP_BYTES)
        )
    words = text.split()
    stripped = [w.strip(PUNCT_STRIP) for w in words]
    non_symbol = [w for w in stripped if w]
    # one lower() and split() over the joined words instead of a lower() per word; the same set
    found = STOP_WORDS.intersection(" ".join(stripped).lower().split())
    return WordCounts(
        len(words), len(non_symbol), sum(map(len, non_symbol)), count_alpha_words(text, words), len(found)
    )


_STOP_BYTES = tuple(w.encode() for w in sorted(STOP_WORDS))


@lru_cache(maxsize=1)
def _alpha_table() -> bytes:
    """One byte per code point, 1 where str.isalpha (Python's own Unicode tables); ~0.1 s once."""
    return bytes(map(str.isalpha, every_code_point()))


# --- repetition -------------------------------------------------------------------------
def duplicate_fractions(items: list[str]) -> tuple[float, float]:
    """(fraction of items that are duplicates, fraction of chars in duplicate items)."""
    seen: set[str] = set()
    dup_items = dup_chars = total_chars = 0
    for it in items:
        total_chars += len(it)
        if it in seen:
            dup_items += 1
            dup_chars += len(it)
        else:
            seen.add(it)
    return dup_items / max(len(items), 1), dup_chars / max(total_chars, 1)


def top_ngram_char_fraction(words: list[str], n: int, total_chars: int) -> float:
    """Chars covered by the most frequent word n-gram, over all word chars (Gopher)."""
    if len(words) < n:
        return 0.0
    counts = Counter(zip(*(words[i:] for i in range(n))))
    gram, freq = counts.most_common(1)[0]
    if freq <= 1:
        return 0.0
    return sum(map(len, gram)) * freq / max(total_chars, 1)


def duplicate_ngram_char_fraction(words: list[str], n: int, total_chars: int) -> float:
    """Chars of words inside any n-gram that occurs more than once; each word counted once."""
    if len(words) < n:
        return 0.0
    first_seen: dict[tuple[str, ...], int] = {}
    covered = bytearray(len(words))
    for i, gram in enumerate(zip(*(words[j:] for j in range(n)))):
        prev = first_seen.setdefault(gram, i)
        if prev != i:
            covered[prev : prev + n] = b"\x01" * n
            covered[i : i + n] = b"\x01" * n
    if not any(covered):
        return 0.0
    dup = sum(len(w) for w, c in zip(words, covered) if c)
    return dup / max(total_chars, 1)


class GopherRepetitionFilter(Filter):
    name = "gopher_repetition"

    def __init__(self, cfg: GopherRepetitionConfig = GopherRepetitionConfig()):
        self.cfg = cfg

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        paragraphs = [p for p in text.strip().split("\n\n") if p.strip()]
        para_frac, para_char_frac = duplicate_fractions(paragraphs)
        if self.cfg.dup_para_frac is not None and para_frac > self.cfg.dup_para_frac:
            return False, "gopher_dup_para_frac"
        if self.cfg.dup_para_char_frac is not None and para_char_frac > self.cfg.dup_para_char_frac:
            return False, "gopher_dup_para_char_frac"
        lines = [ln for ln in text.splitlines() if ln.strip()]
        line_frac, line_char_frac = duplicate_fractions(lines)
        if self.cfg.dup_line_frac is not None and line_frac > self.cfg.dup_line_frac:
            return False, "gopher_dup_line_frac"
        if self.cfg.dup_line_char_frac is not None and line_char_frac > self.cfg.dup_line_char_frac:
            return False, "gopher_dup_line_char_frac"
        dup_n_grams = sorted(self.cfg.dup_n_grams)
        top, dup = ngram_fractions(text, [n for n, _ in self.cfg.top_n_grams], [n for n, _ in dup_n_grams])
        for (n, limit), frac in zip(self.cfg.top_n_grams, top):
            if frac > limit:
                return False, f"gopher_top_{n}_gram"
        for (n, limit), frac in zip(dup_n_grams, dup):
            if frac > limit:
                return False, f"gopher_duplicated_{n}_n_grams"
            if frac == 0.0:  # no repeated n-gram means no repeated longer one either
                break
        return True


def ngram_fractions(
    text: str, top_ns: list[int], dup_ns: list[int], compiled: bool | None = None
) -> tuple[list[float], list[float]]:
    """`top_ngram_char_fraction` of each n in `top_ns` and `duplicate_ngram_char_fraction` of each
    n in `dup_ns` over the words of `text`: in one compiled call when it is built (~20x faster),
    else by the functions above; `compiled` forces one path (tests). The compiled path computes
    every n (the rules' early exits are the caller's); the Python one skips an n when a shorter
    one had no repeat (it has none either)."""
    if compiled if compiled is not None else _gopher is not None:
        if _gopher is None:
            raise RuntimeError("filters._gopher is not built: `pip install -e .` builds it (needs g++)")
        return _gopher.ngram_fractions(text.encode("utf-8", "surrogatepass"), top_ns, dup_ns)
    words = text.split()
    total_chars = sum(map(len, words))
    top = [top_ngram_char_fraction(words, n, total_chars) for n in top_ns]
    dup: list[float] = []
    for i, n in enumerate(dup_ns):
        none_shorter = i > 0 and dup[-1] == 0.0 and dup_ns[i - 1] <= n  # no repeated shorter n-gram: none here
        dup.append(0.0 if none_shorter else duplicate_ngram_char_fraction(words, n, total_chars))
    return top, dup
