"""A learned quality filter: a fastText classifier of reference-quality text vs. crawl.

The DCLM recipe (Li et al. 2024): fastText supervised learning with word bigrams on
high-quality positives against crawl negatives; keep the documents it scores highest.
Training and scoring see the same normalised text (`normalize_for_classifier`), long
documents are cut into examples of about `example_chars` on both sides (so length is no
cue), each class is capped with a deterministic sample (the `max_per_class` smallest
hashes: memory O(cap), not O(corpus)), and a held-out split picked by hash measures it.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import regex
from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.codepoints import regex_class_table
from filters.base import Filter
from filters.document import Document
from filters.langid import fasttext_top

try:
    from filters import _classifier_text
except ImportError:  # no C++ compiler at install time: the `regex` module gives the same text, slower
    _classifier_text = None

POSITIVE, NEGATIVE = "__label__hq", "__label__cc"
HIST_BINS = 1000  # score histograms: top_fraction thresholds are exact to 1/HIST_BINS
_TOKEN = regex.compile(r"\w+|[^\w\s]")


def normalize_for_classifier(text: str, compiled: bool | None = None) -> str:
    """Lower-cased words and punctuation (the tokens of `_TOKEN`), one space apart, on one line
    (fastText's input). The compiled split when it is built; `compiled` forces one path (tests)."""
    lowered = text.lower()
    if compiled if compiled is not None else _classifier_text is not None:
        if _classifier_text is None:
            raise RuntimeError("filters._classifier_text is not built: `pip install -e .` builds it (needs g++)")
        return _classifier_text.words_and_punct(lowered.encode("utf-8", "surrogatepass"), _word_space_classes())
    return " ".join(_TOKEN.findall(lowered))


@lru_cache(maxsize=1)
def _word_space_classes() -> bytes:
    """One byte per code point for the compiled split: 1 for \\w, 2 for \\s, 0 else, as the
    `regex` engine that runs `_TOKEN` classifies them (1.1 MB, ~0.04 s once per process)."""
    return regex_class_table([(1, r"\w+"), (2, r"\s+")])


class FastTextSettings(BaseModel):
    """fastText supervised-learning settings: word bigrams as DCLM; 25 epochs at lr 0.5 as
    fastText's own tutorial advises for small data. fastText's defaults (5 epochs, lr 0.1)
    underfit a few hundred examples per class: held-out F1 0.66 (everything called
    positive) against 1.00 with these, on the shared reference/crawl text."""

    model_config = ConfigDict(extra="forbid")
    word_ngrams: int = Field(2, ge=1, le=5)
    dim: int = Field(100, ge=2)
    epoch: int = Field(25, ge=1)
    lr: float = Field(0.5, gt=0)
    min_count: int = Field(1, ge=1)
    bucket: int | None = Field(
        None,
        ge=1,
        description="hash buckets for word n-grams; default: sized to the training text (see ngram_buckets)",
    )
    seed: int = 0  # with one thread, training is deterministic: a rebuild gives the same model


FASTTEXT_BUCKETS = 2_000_000  # fastText's default, DCLM's setting


def ngram_buckets(rows: list[str], word_ngrams: int) -> int:
    """Hash buckets enough for the training text's word n-grams: the next power of two ≥ their
    count (occurrences, an upper bound of the distinct ones), at least 2^16 and at most
    fastText's 2,000,000. Each bucket is a `dim`-float row of the model: with 2M of them a
    classifier trained on a few hundred examples is an 800 MB file, loaded whole by every
    clean-data worker, and scoring is ~20% slower for the cache misses (BENCHMARKS.md)."""
    if word_ngrams == 1:
        return 0  # no n-grams, no buckets (fastText's own choice for unigram models)
    occurrences = sum(max(len(row.split()) - 1, 0) for row in rows) * (word_ngrams - 1)
    return min(FASTTEXT_BUCKETS, max(1 << 16, 1 << max(occurrences - 1, 1).bit_length()))


class QualityModelConfig(BaseModel):
    """Training data and settings of a `quality-model` artifact."""

    model_config = ConfigDict(extra="forbid")
    positives: list[str] = Field(
        ..., min_length=1, description="reference-quality text: files, directories, globs or clean-data artifact keys"
    )
    negatives: list[str] = Field(
        ..., min_length=1, description="crawl text: files, directories, globs or clean-data artifact keys"
    )
    split_text_on_blank_lines: bool = False
    example_chars: int = Field(
        2000, ge=100, description="long documents are cut at line ends into examples of about this size"
    )
    min_example_words: int = Field(20, ge=1)
    max_per_class: int = Field(20_000, ge=10)
    balance: bool = Field(True, description="sample the larger class down to the smaller")
    heldout_fraction: float = Field(0.1, gt=0, lt=0.5)
    fasttext: FastTextSettings = FastTextSettings()


class KeepRule(BaseModel):
    """Which scores survive: an absolute `threshold`, or the `top_fraction` of documents
    reaching the classifier (its threshold found from the corpus' score histogram)."""

    model_config = ConfigDict(extra="forbid")
    threshold: float | None = Field(None, ge=0, le=1)
    top_fraction: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _one(self) -> KeepRule:
        if (self.threshold is None) == (self.top_fraction is None):
            raise ValueError("keep: give exactly one of threshold or top_fraction")
        return self


class ClassifierConfig(BaseModel):
    """clean-data's `classifier:` section."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(..., description="a quality-model artifact key, or a fastText .bin/.ftz file")
    keep: KeepRule = KeepRule(threshold=0.5)


# --- training -----------------------------------------------------------------------------------
def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def examples_of(texts: Iterable[str], example_chars: int, min_words: int) -> Iterator[str]:
    """Normalised examples: each text cut at line ends into pieces of about `example_chars`."""
    for text in texts:
        piece: list[str] = []
        size = 0
        for line in text.splitlines():
            piece.append(line)
            size += len(line) + 1
            if size >= example_chars:
                yield from _keep(piece, min_words)
                piece, size = [], 0
        yield from _keep(piece, min_words)


def _keep(lines: list[str], min_words: int) -> Iterator[str]:
    norm = normalize_for_classifier("\n".join(lines))
    if norm.count(" ") + 1 >= min_words:
        yield norm


def sample_examples(examples: Iterable[str], cap: int) -> list[str]:
    """The `cap` examples with the smallest hashes: a deterministic uniform sample in O(cap)
    memory, whatever the input order; duplicates count once."""
    heap: list[tuple[int, str]] = []  # max-heap on hash via negation
    seen: set[int] = set()
    for ex in examples:
        h = _stable_hash(ex)
        if h in seen:
            continue
        if len(heap) < cap:
            heapq.heappush(heap, (-h, ex))
            seen.add(h)
        elif h < -heap[0][0]:
            seen.discard(-heapq.heappushpop(heap, (-h, ex))[0])
            seen.add(h)
    return [ex for _, ex in sorted(heap, reverse=True)]


@dataclass
class TrainedClassifier:
    model: object  # fasttext's _FastText
    metrics: dict


def train_quality_classifier(
    positives: Iterable[str], negatives: Iterable[str], cfg: QualityModelConfig, work_dir: Path | None = None
) -> TrainedClassifier:
    """Train on raw texts of each class; returns the model and its held-out metrics
    (precision/recall/F1 of the positive class at 0.5, counts, score histograms)."""
    import fasttext

    pos = sample_examples(examples_of(positives, cfg.example_chars, cfg.min_example_words), cfg.max_per_class)
    neg = sample_examples(examples_of(negatives, cfg.example_chars, cfg.min_example_words), cfg.max_per_class)
    if len(pos) < 10 or len(neg) < 10:
        raise ValueError(
            f"too little training text: {len(pos)} positive and {len(neg)} negative examples (need ≥ 10 each)"
        )
    if cfg.balance:
        n = min(len(pos), len(neg))
        pos, neg = pos[:n], neg[:n]  # already in hash order: still a uniform sample
    split = {label: _split(examples, cfg.heldout_fraction) for label, examples in ((POSITIVE, pos), (NEGATIVE, neg))}
    train_rows = [(label, ex) for label in split for ex in split[label][0]]
    train_rows.sort(key=lambda row: _stable_hash(row[1]))  # interleave the classes, reproducibly
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        train_file = Path(tmp) / "train.txt"
        train_file.write_text("".join(f"{label} {ex}\n" for label, ex in train_rows), encoding="utf-8")
        ft = cfg.fasttext
        model = fasttext.train_supervised(
            input=str(train_file),
            wordNgrams=ft.word_ngrams,
            dim=ft.dim,
            epoch=ft.epoch,
            lr=ft.lr,
            minCount=ft.min_count,
            bucket=ft.bucket if ft.bucket is not None else ngram_buckets([ex for _, ex in train_rows], ft.word_ngrams),
            seed=ft.seed,
            thread=1,
            verbose=0,
        )
    scores = {label: np.array([positive_probability(model, ex) for ex in split[label][1]]) for label in split}
    return TrainedClassifier(model, _metrics(scores, {label: len(split[label][0]) for label in split}))


def _split(examples: list[str], fraction: float) -> tuple[list[str], list[str]]:
    """(train, held out) by hash: an example's side never depends on what else is there."""
    held = [ex for ex in examples if (_stable_hash("heldout:" + ex) % 10_000) < fraction * 10_000]
    held_set = set(held)
    return [ex for ex in examples if ex not in held_set], held


def _metrics(scores: dict[str, np.ndarray], train_counts: dict[str, int]) -> dict:
    pos, neg = scores[POSITIVE], scores[NEGATIVE]
    tp, fn, fp = int((pos >= 0.5).sum()), int((pos < 0.5).sum()), int((neg >= 0.5).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    edges = np.linspace(0, 1, 21)
    return {
        "heldout": {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "accuracy": (tp + int((neg < 0.5).sum())) / (len(pos) + len(neg)),
            "positives": len(pos),
            "negatives": len(neg),
        },
        "train": {"positives": train_counts[POSITIVE], "negatives": train_counts[NEGATIVE]},
        "score_histogram": {
            "edges": edges.round(3).tolist(),
            "positives": np.histogram(pos, edges)[0].tolist(),
            "negatives": np.histogram(neg, edges)[0].tolist(),
        },
    }


# --- scoring ------------------------------------------------------------------------------------
def positive_probability(model, normalized: str) -> float:
    for p, label in fasttext_top(model, normalized, k=2):
        if label == POSITIVE:
            return min(max(p, 0.0), 1.0)  # fastText's softmax can exceed 1 by an ulp
    return 0.0


@lru_cache(maxsize=2)
def load_classifier(path: str):
    import fasttext

    model = fasttext.load_model(path)
    if set(model.get_labels()) != {POSITIVE, NEGATIVE}:
        raise ValueError(
            f"{path}: not a quality classifier (labels {model.get_labels()}, expected {POSITIVE} and {NEGATIVE})"
        )
    return model


def score_text(text: str, model) -> float:
    """P(reference quality) of a raw text."""
    return positive_probability(model, normalize_for_classifier(text))


def threshold_for_top_fraction(histogram: list[int], fraction: float) -> float:
    """The lowest bin edge whose bins and above hold at most `fraction` of the documents:
    documents scoring ≥ it are the top `fraction`, to 1/HIST_BINS. Never an empty selection:
    when even the top non-empty bin holds more, that bin is kept."""
    counts = np.asarray(histogram)
    total = counts.sum()
    if not total:
        return 0.0
    above = np.cumsum(counts[::-1])[::-1]  # above[i]: documents in bins i..end
    first = int(np.nonzero(above <= fraction * total + 1e-9)[0][0]) if above[-1] <= fraction * total else len(counts)
    if first == len(counts) or above[first] == 0:
        first = int(np.nonzero(counts)[0][-1])
    return first / len(counts)


def score_bin(score: float) -> int:
    return min(int(math.floor(score * HIST_BINS)), HIST_BINS - 1)


class QualityClassifierFilter(Filter):
    """Score every document (`quality_score`, a column of the output); drop below the keep
    threshold. With `top_fraction` nothing is dropped here: the corpus' score histogram
    fixes the threshold and the write phase applies it (`filters.pipeline`)."""

    name = "quality_classifier"

    def __init__(self, model_path: str, keep: KeepRule, histogram: list[int] | None = None):
        self.model = load_classifier(model_path)
        self.threshold = keep.threshold
        self.histogram = histogram  # filled with every scored document's bin

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        score = score_text(doc.text, self.model)
        doc.metadata["quality_score"] = score
        if self.histogram is not None:
            self.histogram[score_bin(score)] += 1
        if self.threshold is not None and score < self.threshold:
            return False, "quality_low_score"
        return True


# --- reading and reporting ---------------------------------------------------------------------
def read_texts(files: Iterable[Path], stats, split_text_on_blank_lines: bool = False) -> Iterator[str]:
    """Texts of every document in `files`, through clean-data's readers (bad records counted
    in `stats` and skipped, as there)."""
    from filters.readers import read_documents

    for f in files:
        for doc in read_documents(Path(f), stats, split_blank_lines=split_text_on_blank_lines):
            yield doc.text
