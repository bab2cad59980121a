"""Corpus-level dedup: fuzzy documents (MinHash + LSH), then exact lines.

Both are global steps: they see the whole corpus after the per-file filters. Document
dedup runs first so that two copies of a document do not erase each other's lines.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import regex

from filters.config import MinHashDedupConfig

SPACES = regex.compile(r"\s+")
# punctuation (Unicode general category P) → a space, by str/bytes.translate instead of a regex pass
_ASCII_PUNCT = bytes(c for c in range(128) if unicodedata.category(chr(c)).startswith("P"))
ASCII_PUNCT_TABLE = bytes.maketrans(_ASCII_PUNCT, b" " * len(_ASCII_PUNCT))


@functools.cache
def _non_ascii_table() -> dict[int, str | None]:
    """str.translate table for NFD text: punctuation (category P) → a space, combining marks
    (the accents NFD split off) → deleted. No character is both."""
    table: dict[int, str | None] = {}
    for c in range(sys.maxunicode + 1):
        ch = chr(c)
        if unicodedata.combining(ch):
            table[c] = None
        elif unicodedata.category(ch).startswith("P"):
            table[c] = " "
    return table


def normalize_bytes(text: str) -> bytes:
    """`normalize(text)` as UTF-8: ASCII text (most documents) is normalised as bytes, 3x faster;
    other text in one translate pass (accents and punctuation) after NFD."""
    text = text.lower()
    if text.isascii():  # no accents to strip; bytes.split's whitespace is \s restricted to ASCII
        return b" ".join(text.encode().translate(ASCII_PUNCT_TABLE).split())
    text = unicodedata.normalize("NFD", text).translate(_non_ascii_table())
    return SPACES.sub(" ", text).strip().encode()


def normalize(text: str) -> str:
    """Lowercase, NFD and strip accents, drop punctuation, collapse whitespace."""
    return normalize_bytes(text).decode()


def shingles(text: str, n: int = 5) -> set[bytes]:
    """Word n-gram shingles of the normalised text (the whole text if shorter than n)."""
    words = normalize(text).split(" ")
    if len(words) <= n:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)}


def jaccard(a: set[bytes], b: set[bytes]) -> float:
    return len(a & b) / max(len(a | b), 1)


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # the smaller index becomes the root, so each cluster keeps its lowest index
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class DedupResult:
    keep: np.ndarray  # bool mask over input docs
    candidate_pairs: int
    verified_pairs: int
    clusters: int  # clusters with more than one member


def minhash_dedup(
    texts: Sequence[str], ids: Sequence[str], cfg: MinHashDedupConfig = MinHashDedupConfig()
) -> DedupResult:
    """Keep one document per near-duplicate cluster: the one with the lowest id.

    The in-memory reference (the whole corpus in one process): clean-data runs the
    partitioned steps of filters/partitioned_dedup.py, tested to give the same result.

    Signatures come from datasketch's `MinHash.bulk`, candidates from `MinHashLSH` with
    explicit (bands, rows); every candidate pair is verified by its true Jaccard before
    it joins a cluster (union-find, so clusters are transitive).
    """
    from datasketch import MinHash, MinHashLSH

    num_perm = cfg.bands * cfg.rows
    # process docs sorted by id so that cluster roots (lowest index) are the lowest ids
    order = sorted(range(len(texts)), key=lambda i: ids[i])
    shingle_sets = [shingles(texts[i], cfg.ngram) for i in order]
    lsh = MinHashLSH(num_perm=num_perm, params=(cfg.bands, cfg.rows))
    signatures = MinHash.bulk(shingle_sets, num_perm=num_perm, seed=cfg.seed)
    candidates: set[tuple[int, int]] = set()
    with lsh.insertion_session() as session:
        for j, sig in enumerate(signatures):
            session.insert(j, sig, check_duplication=False)
    for j, sig in enumerate(signatures):
        for other in lsh.query(sig):
            if other != j:
                candidates.add((min(j, other), max(j, other)))
    uf = UnionFind(len(order))
    verified = 0
    for a, b in candidates:
        if jaccard(shingle_sets[a], shingle_sets[b]) >= cfg.threshold:
            uf.union(a, b)
            verified += 1
    keep = np.zeros(len(texts), dtype=bool)
    roots: dict[int, int] = {}
    for j in range(len(order)):
        r = uf.find(j)
        roots[r] = roots.get(r, 0) + 1
        if r == j:
            keep[order[j]] = True
    return DedupResult(keep, len(candidates), verified, sum(1 for c in roots.values() if c > 1))


# --- exact line dedup --------------------------------------------------------------------
def line_hash(line: str) -> bytes:
    return hashlib.blake2b(line.encode("utf-8", "surrogatepass"), digest_size=8).digest()


def count_lines(texts: Iterable[str]) -> dict[bytes, int]:
    """Pass 1: occurrences of every non-blank line across the corpus (memory: distinct lines)."""
    counts: dict[bytes, int] = {}
    for text in texts:
        for line in text.split("\n"):
            if line.strip():
                h = line_hash(line)
                counts[h] = counts.get(h, 0) + 1
    return counts


class LineDeduper:
    """Pass 2: drop repeated lines. `keep_first` keeps a line's first occurrence in the
    corpus; `drop_all` drops every copy of a repeated line (CS336 semantics, for boilerplate).
    Blank lines are never dedup'ed: they carry paragraph structure.
    """

    def __init__(self, counts: dict[bytes, int], mode: Literal["keep_first", "drop_all"] = "keep_first"):
        self.counts, self.mode = counts, mode
        self.seen: set[bytes] = set()
        self.lines_dropped = 0

    def __call__(self, text: str) -> str:
        out = []
        for line in text.split("\n"):
            if line.strip():
                h = line_hash(line)
                if self.counts.get(h, 0) > 1:
                    if self.mode == "drop_all" or h in self.seen:
                        self.lines_dropped += 1
                        continue
                    self.seen.add(h)
            out.append(line)
        return "\n".join(out)
