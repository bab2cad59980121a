"""In-memory references for the partitioned dedup steps (filters/partitioned_dedup.py): the
whole corpus in one process, datasketch's own MinHash + LSH, one dict of line counts. Tests
compare the library's partitioned steps with these; they are not library code."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from filters.dedup import UnionFind, line_hash, shingles
from filters.partitioned_dedup import MinHashDedupConfig


def jaccard(a: set[bytes], b: set[bytes]) -> float:
    return len(a & b) / max(len(a | b), 1)


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
