"""Corpus-level dedup as partition steps with bounded memory, each a plain function over one
partition that writes its result under a work dir and leaves a completion marker.

Documents are addressed by `doc = part << 32 | row` (part: the per-file shard set from the
filter phase, row: position in it), so corpus order is numeric order.

1. `write_band_hashes` (per part): MinHash signatures (`minhash.hash`: xxh64, or sha1 = datasketch's)
   → one 64-bit hash per LSH band → records (band, hash, doc) split into B bucket files by hash.
2. `find_candidates` (per bucket): equal (band, hash) → candidate pairs.
3. `resolve_clusters` (once): true Jaccard of each candidate pair, reading only those
   documents' texts; union-find over them; the lowest id of each cluster survives.
   Memory: the documents that have candidates, not the corpus.
4. `write_line_hashes` (per part): (line hash, doc, line number) of surviving documents'
   non-blank lines, split into B bucket files by hash.
5. `find_repeated_lines` (per bucket): lines seen more than once → which copies to drop,
   one file per (bucket, part).
6. `write_final_part` (per part): drop removed documents and lines, write the part's shards.

B (`buckets_for`) grows with the corpus so that each bucket holds about `partition_docs`
documents' records: that is what bounds a task's memory. Results do not depend on B, on
the task runner or on how many workers run: every (band, hash) and every line hash lands
in exactly one bucket.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from filters.base import StrictConfig
from filters.dedup import UnionFind, line_hash, shingles
from filters.shingle_hash import compiled_signatures, shingle_hashes
from filters.writer import ParquetShardWriter, row_to_document

BAND = np.dtype([("band", "<u2"), ("hash", "<u8"), ("doc", "<u8")])
LINE = np.dtype([("hash", "<u8"), ("doc", "<u8"), ("line", "<u4")])
DROP = np.dtype([("doc", "<u8"), ("line", "<u4")])
BATCH_DOCS = 1024


class MinHashDedupConfig(StrictConfig):
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


class LineDedupConfig(StrictConfig):
    enabled: bool = True
    mode: Literal["keep_first", "drop_all"] = "keep_first"
    min_words_after: int = Field(5, ge=0)  # docs left shorter than this are dropped, counted


def doc_number(part: int, row: int) -> int:
    return part << 32 | row


def buckets_for(docs: int, partition_docs: int) -> int:
    return max(1, math.ceil(docs / partition_docs))


@dataclass(frozen=True)
class DedupLayout:
    """Where each step's files live under the stage's work dir."""

    root: Path
    buckets: int

    def bands(self, part: int, bucket: int) -> Path:
        return self.root / "bands" / f"p{part:05d}-b{bucket:05d}.bin"

    def pairs(self, bucket: int) -> Path:
        return self.root / "pairs" / f"b{bucket:05d}.npy"

    def removed(self) -> Path:
        return self.root / "removed.npy"

    def lines(self, part: int, bucket: int) -> Path:
        return self.root / "lines" / f"p{part:05d}-b{bucket:05d}.bin"

    def line_drops(self, bucket: int, part: int) -> Path:
        return self.root / "line-drops" / f"b{bucket:05d}-p{part:05d}.npy"

    def final(self) -> Path:
        return self.root / "final"

    def marker(self, step: str, index: int) -> Path:
        return self.root / "done" / f"{step}-{index:05d}.json"


def once(marker: Path, step: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `step` unless its marker exists; the marker holds the step's result (its stats),
    written after the step's files, atomically, so a killed run resumes from finished steps."""
    if marker.is_file():
        return {**json.loads(marker.read_text()), "reused": True}
    result = step()
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, marker)
    return {**result, "reused": False}


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def _load_all(paths: list[Path], dtype: np.dtype) -> np.ndarray:
    arrays = [np.load(p) for p in paths if p.is_file()]
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype)


def _iter_column(files: list[Path], column: str):
    """(row, value) over one part's shards, a batch at a time."""
    row = 0
    for f in files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=BATCH_DOCS, columns=[column]):
            values = batch.column(0).to_pylist()
            yield row, values
            row += len(values)


class BucketFiles:
    """Append a part's records to its B bucket files a batch at a time (raw little-endian
    structs), so a task holds one batch, never the whole part. Written under temporary
    names and renamed on a clean exit: a killed task leaves nothing a rerun would read."""

    def __init__(self, path_of: Callable[[int], Path], buckets: int):
        self.paths = [path_of(b) for b in range(buckets)]
        self.paths[0].parent.mkdir(parents=True, exist_ok=True)
        self.files = [open(p.with_name(p.name + ".tmp"), "wb") for p in self.paths]

    def write(self, records: np.ndarray) -> None:
        which = records["hash"] % np.uint64(len(self.files))
        for b, f in enumerate(self.files):
            f.write(records[which == b].tobytes())

    def __enter__(self) -> BucketFiles:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        for f in self.files:
            f.close()
        if exc_type is None:
            for p in self.paths:
                os.replace(p.with_name(p.name + ".tmp"), p)


def _load_records(paths: list[Path], dtype: np.dtype) -> np.ndarray:
    arrays = [np.fromfile(p, dtype=dtype) for p in paths if p.is_file()]
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype)


# --- 1. signatures → band hashes ------------------------------------------------------------
# Shingles per matrix block when signatures are permuted: block × num_perm × 4 bytes (~1.8 MB)
# stays in cache; 50,000 (22 MB) was measured 2x slower.
SHINGLES_PER_BLOCK = 4096


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, as datasketch applies it before its affine permutations."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def _shingle_hash32(block: list[str], cfg: MinHashDedupConfig) -> tuple[np.ndarray, list[int]]:
    """32-bit hashes of every shingle of a block of documents, and each document's count.

    `sha1` (datasketch's default family: sha1 → 32 bits → fmix32, one Python call a shingle)
    or `xxh64` (its low 32 bits, one compiled call a document, filters/shingle_hash.py)."""
    if cfg.hash == "xxh64":
        per_doc = [shingle_hashes(text, cfg.ngram) for text in block]
        return np.concatenate(per_doc).astype(np.uint32), [len(h) for h in per_doc]
    sets = [shingles(text, cfg.ngram) for text in block]
    digests = b"".join(hashlib.sha1(sh).digest()[:4] for doc in sets for sh in doc)
    return _fmix32(np.frombuffer(digests, dtype="<u4").astype(np.uint32)), [len(doc) for doc in sets]


def minhash_signatures(texts: list[str], cfg: MinHashDedupConfig) -> np.ndarray:
    """(docs, bands·rows) uint32 signatures: each shingle hash h through datasketch's affine
    permutations a·h + b mod 2^32, minimum per document. With `hash: sha1` they equal
    datasketch's `MinHash.bulk(shingle sets, seed=seed).hashvalues` (tested). numpy over all
    shingles of a cache-sized block of documents at once instead of one document at a time."""
    from datasketch import MinHash

    num_perm = cfg.bands * cfg.rows
    a, b = (x.astype(np.uint32) for x in MinHash(num_perm=num_perm, seed=cfg.seed).permutations)
    if cfg.hash == "xxh64" and (compiled := compiled_signatures(texts, cfg.ngram, a, b)) is not None:
        return compiled
    hv, counts = _shingle_hash32(texts, cfg)  # every document has at least one shingle
    ends = np.cumsum(counts)
    starts = ends - counts
    out = np.empty((len(texts), num_perm), np.uint32)
    doc = 0
    while doc < len(texts):
        # the documents from `doc` whose shingles fit in one block (at least one document)
        last = max(doc + 1, int(np.searchsorted(ends, starts[doc] + SHINGLES_PER_BLOCK, side="right")))
        permuted = hv[starts[doc] : ends[last - 1], None] * a[None, :] + b[None, :]  # wraps mod 2^32, as datasketch's
        out[doc:last] = np.minimum.reduceat(permuted, starts[doc:last] - starts[doc], axis=0)
        doc = last
    return out


def band_hashes(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(docs, bands) uint64: one hash of each band's `rows` values (FNV-1a over 32-bit words,
    then a 64-bit finalizer). A collision only adds a candidate pair, which is then verified."""
    sig = signatures.reshape(len(signatures), bands, rows).astype(np.uint64)
    h = np.full(sig.shape[:2], 0xCBF29CE484222325, np.uint64)
    for k in range(rows):
        h = (h ^ sig[:, :, k]) * np.uint64(0x100000001B3)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    return h ^ (h >> np.uint64(33))


def write_band_hashes(part: int, files: list[Path], layout: DedupLayout, cfg: MinHashDedupConfig) -> dict[str, Any]:
    docs = 0
    bands = cfg.bands
    with BucketFiles(lambda b: layout.bands(part, b), layout.buckets) as out:
        for start, texts in _iter_column(files, "text"):
            hashes = band_hashes(minhash_signatures(texts, cfg), bands, cfg.rows)
            rec = np.zeros(len(texts) * bands, BAND)
            rec["band"] = np.tile(np.arange(bands, dtype="<u2"), len(texts))
            rec["hash"] = hashes.reshape(-1)
            rec["doc"] = np.repeat(
                np.array([doc_number(part, start + i) for i in range(len(texts))], dtype="<u8"), bands
            )
            out.write(rec)
            docs += len(texts)
    return {"docs": docs}


# --- 2. buckets → candidate pairs -------------------------------------------------------------
# A group larger than this (many exact copies of one page) is linked as a star around its
# first document instead of all its pairs, so a boilerplate page seen 10^5 times costs 10^5 pairs.
ALL_PAIRS_UP_TO = 64


def find_candidates(bucket: int, parts: int, layout: DedupLayout) -> dict[str, Any]:
    rec = _load_records([layout.bands(p, bucket) for p in range(parts)], BAND)
    rec = rec[np.lexsort((rec["doc"], rec["hash"], rec["band"]))]
    same = (rec["band"][1:] == rec["band"][:-1]) & (rec["hash"][1:] == rec["hash"][:-1])
    edges = np.diff(
        np.concatenate(([0], same.astype(np.int8), [0]))
    )  # +1 where a run of equal keys starts, -1 after it ends
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) + 1
    pairs: list[tuple[int, int]] = []
    for s, e in zip(starts, ends):
        group = np.unique(rec["doc"][s:e])
        if len(group) <= ALL_PAIRS_UP_TO:
            pairs += [(int(a), int(b)) for i, a in enumerate(group) for b in group[i + 1 :]]
        else:
            pairs += [(int(group[0]), int(b)) for b in group[1:]]
    out = np.unique(np.array(pairs, dtype="<u8").reshape(-1, 2), axis=0)
    _save(layout.pairs(bucket), out)
    return {"pairs": len(out)}


# --- 3. clusters ------------------------------------------------------------------------------
def shingle_ids(text: str, ngram: int) -> np.ndarray:
    """The document's shingle set as sorted unique 64-bit hashes (XXH64): 8 bytes a shingle instead
    of a bytes object in a set (~70), so verifying many candidate pairs stays small in memory.
    Jaccard on these equals Jaccard on the shingles up to 64-bit collisions."""
    return np.unique(shingle_hashes(text, ngram))


def resolve_clusters(part_files: list[list[Path]], layout: DedupLayout, cfg: MinHashDedupConfig) -> dict[str, Any]:
    ngram, threshold = cfg.ngram, cfg.threshold
    pairs = _load_all([layout.pairs(b) for b in range(layout.buckets)], np.dtype("<u8")).reshape(-1, 2)
    pairs = np.unique(pairs, axis=0)
    involved = np.unique(pairs)
    sets: dict[int, np.ndarray] = {}
    ids: dict[int, str] = {}
    for part, files in enumerate(part_files):
        lo, hi = doc_number(part, 0), doc_number(part + 1, 0)
        wanted = set(int(d) & 0xFFFFFFFF for d in involved[(involved >= lo) & (involved < hi)])
        if not wanted:
            continue
        row = 0
        for f in files:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=BATCH_DOCS, columns=["id", "text"]):
                # only the wanted rows become Python strings
                local = [i for i in range(batch.num_rows) if row + i in wanted]
                picked = batch.take(pa.array(local, pa.int64())).to_pydict()
                for i, doc_id, text in zip(local, picked["id"], picked["text"]):
                    sets[doc_number(part, row + i)] = shingle_ids(text, ngram)
                    ids[doc_number(part, row + i)] = doc_id
                row += batch.num_rows
    # union-find over the documents that have candidates only; the root is the lowest (id, position)
    order = sorted(ids, key=lambda d: (ids[d], d))
    index = {d: i for i, d in enumerate(order)}
    uf = UnionFind(len(order))
    verified = 0
    for a, b in pairs:
        x, y = sets[int(a)], sets[int(b)]
        common = len(np.intersect1d(x, y, assume_unique=True))
        if common / max(len(x) + len(y) - common, 1) >= threshold:
            uf.union(index[int(a)], index[int(b)])
            verified += 1
    sizes: dict[int, int] = {}
    for i in range(len(order)):
        r = uf.find(i)
        sizes[r] = sizes.get(r, 0) + 1
    removed = np.array(sorted(order[i] for i in range(len(order)) if uf.find(i) != i), dtype="<u8")
    _save(layout.removed(), removed)
    return {
        "candidate_pairs": len(pairs),
        "verified_pairs": verified,
        "clusters": sum(1 for n in sizes.values() if n > 1),
        "dropped_near_duplicate": len(removed),
    }


def removed_rows(layout: DedupLayout, part: int) -> set[int]:
    path = layout.removed()
    if not path.is_file():
        return set()
    removed = np.load(path)
    mine = removed[(removed >> np.uint64(32)) == part]
    return set((mine & np.uint64(0xFFFFFFFF)).tolist())


# --- 4. line hashes ---------------------------------------------------------------------------
def write_line_hashes(part: int, files: list[Path], layout: DedupLayout) -> dict[str, Any]:
    removed = removed_rows(layout, part)
    total = 0
    with BucketFiles(lambda b: layout.lines(part, b), layout.buckets) as out:
        for start, texts in _iter_column(files, "text"):
            hashes, docs, lines = [], [], []
            for i, text in enumerate(texts):
                if start + i in removed:
                    continue
                d = doc_number(part, start + i)
                for n, line in enumerate(text.split("\n")):
                    if line.strip():
                        hashes.append(line_hash(line))
                        docs.append(d)
                        lines.append(n)
            rec = np.zeros(len(hashes), LINE)
            rec["hash"] = np.frombuffer(b"".join(hashes), dtype="<u8")
            rec["doc"], rec["line"] = docs, lines
            out.write(rec)
            total += len(rec)
    return {"lines": total}


# --- 5. repeated lines --------------------------------------------------------------------------
def find_repeated_lines(
    bucket: int, parts: int, layout: DedupLayout, mode: Literal["keep_first", "drop_all"]
) -> dict[str, Any]:
    rec = _load_records([layout.lines(p, bucket) for p in range(parts)], LINE)
    rec = rec[np.lexsort((rec["line"], rec["doc"], rec["hash"]))]  # within a hash: corpus order
    first = np.ones(len(rec), dtype=bool)
    first[1:] = rec["hash"][1:] != rec["hash"][:-1]
    repeated = ~first.copy()
    repeated[:-1] |= ~first[1:]  # a line whose hash occurs more than once
    drop = repeated if mode == "drop_all" else repeated & ~first
    dropped = rec[drop]
    for p in range(parts):
        mine = dropped[(dropped["doc"] >> np.uint64(32)) == p]
        out = np.zeros(len(mine), DROP)
        out["doc"], out["line"] = mine["doc"], mine["line"]
        _save(layout.line_drops(bucket, p), out)
    return {"lines_dropped": int(drop.sum())}


# --- 6. filter + write --------------------------------------------------------------------------
def write_final_part(
    part: int,
    files: list[Path],
    layout: DedupLayout,
    line_dedup: bool,
    min_words_after: int,
    shard_max_bytes: int,
    min_quality_score: float | None = None,
) -> dict[str, Any]:
    """The part's final shards go to `layout.final()`; the flow moves them into the artifact.
    `min_quality_score`: the top-fraction threshold of the quality classifier, if any."""
    removed = removed_rows(layout, part)
    drops: dict[int, set[int]] = {}
    if line_dedup:
        for d in _load_all([layout.line_drops(b, part) for b in range(layout.buckets)], DROP):
            drops.setdefault(int(d["doc"]) & 0xFFFFFFFF, set()).add(int(d["line"]))
    stats = {
        "docs_in": 0,
        "docs_out": 0,
        "dropped_too_short_after_line_dedup": 0,
        "quality_in": 0,
        "dropped_quality_below_top_fraction": 0,
    }
    row = 0
    layout.final().mkdir(parents=True, exist_ok=True)
    with ParquetShardWriter(layout.final(), f"shard-{part:05d}", shard_max_bytes) as writer:
        for f in files:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=BATCH_DOCS):
                for r in batch.to_pylist():
                    this, row = row, row + 1
                    if this in removed:
                        continue
                    doc = row_to_document(r)
                    if min_quality_score is not None:
                        stats["quality_in"] += 1
                        if doc.metadata["quality_score"] < min_quality_score:
                            stats["dropped_quality_below_top_fraction"] += 1
                            continue
                    if line_dedup:
                        stats["docs_in"] += 1
                        gone = drops.get(this)
                        if gone:
                            doc.text = "\n".join(line for n, line in enumerate(doc.text.split("\n")) if n not in gone)
                        if len(doc.text.split()) < max(min_words_after, 1):
                            stats["dropped_too_short_after_line_dedup"] += 1
                            continue
                        stats["docs_out"] += 1
                    writer.write(doc)
    return {**stats, "written": writer.docs, "bytes": writer.bytes, "shards": [p.name for p in writer.paths]}
