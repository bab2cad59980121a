"""The clean-data pipeline as library calls: per-file filters, then partitioned corpus dedup.

`clean_partition` (read → language ID → PII → Gopher quality → Gopher repetition → quality
classifier) is independent per partition: consecutive input files grouped up to `partition_bytes`,
a larger JSONL or text file cut into pieces of that size (filters/partitions.py; one task per
file would make 10,000 small files 10,000 tasks a step, and one large file one process).
`clean_corpus` runs it over every partition and then the dedup
steps of `filters/partitioned_dedup.py` (MinHash documents, then exact lines), each a set
of partition calls handed to a `Mapper`: `serial_map` runs them here, in order; the flow
passes one that submits them to its Prefect task runner (processes, threads, Dask). Every
call leaves a completion marker in the work dir, so a killed run resumes from the
finished partitions and gives the same artifact.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack
from itertools import chain
from pathlib import Path
from typing import Any

from filters.base import Step, run_steps
from filters.config import CleanConfig
from filters.document import Stats
from filters.gopher import GopherQualityFilter, GopherRepetitionFilter
from filters.langid import LanguageFilter
from filters.partitioned_dedup import (
    DedupLayout,
    buckets_for,
    find_candidates,
    find_repeated_lines,
    once,
    resolve_clusters,
    write_band_hashes,
    write_final_part,
    write_line_hashes,
)
from filters.partitions import Piece, plan_partitions
from filters.pii import PIIMasker
from filters.quality_classifier import HIST_BINS, QualityClassifierFilter, threshold_for_top_fraction
from filters.readers import read_documents
from filters.rejects import RejectsWriter
from filters.writer import ParquetShardWriter

log = logging.getLogger("lmforge.filters.pipeline")

# (marker, function, kwargs) for one partition; a Mapper runs a list of them, results in order
Call = tuple[Path, Callable[..., dict], dict[str, Any]]
Mapper = Callable[[str, list[Call]], list[dict]]


def run_partition(marker: Path, fn: Callable[..., dict], kwargs: dict[str, Any]) -> dict[str, Any]:
    """One partition step, skipped when its marker says a previous run finished it."""
    return once(marker, lambda: fn(**kwargs))


def serial_map(phase: str, calls: list[Call]) -> list[dict]:
    return [run_partition(*c) for c in calls]


def build_file_steps(cfg: CleanConfig, score_histogram: list[int] | None = None) -> list[Step]:
    steps: list[Step] = []
    if cfg.language.enabled:
        steps.append(LanguageFilter(cfg.language))
    if cfg.pii.enabled:
        steps.append(PIIMasker(cfg.pii))
    if cfg.quality.enabled:
        steps.append(GopherQualityFilter(cfg.quality))
    if cfg.repetition.enabled:
        steps.append(GopherRepetitionFilter(cfg.repetition))
    if cfg.classifier is not None:
        steps.append(QualityClassifierFilter(cfg.classifier.model, cfg.classifier.keep, score_histogram))
    return steps


def clean_partition(pieces: list[Piece], cfg: CleanConfig, out_dir: Path, index: int) -> dict[str, Any]:
    """Run the per-document steps on a partition's input files (or pieces of one), in order;
    write the survivors as `part-<index>` shards (and, with `rejects.enabled`, a sample of what
    each rule dropped as `rejects-<index>`)."""
    stats = Stats()
    docs = chain.from_iterable(
        read_documents(
            Path(piece.path),
            stats,
            cfg.max_doc_chars,
            cfg.split_text_on_blank_lines,
            cfg.extraction == "main_content",
            cfg.encoding,
            piece.start,
            piece.end,
            piece.first_line,
        )
        for piece in pieces
    )
    # scores are binned only when a top fraction must be found from them
    histogram = [0] * HIST_BINS if cfg.classifier is not None and cfg.classifier.keep.top_fraction is not None else None
    with ExitStack() as stack:
        rejects = (
            stack.enter_context(RejectsWriter(out_dir, f"rejects-{index:05d}", cfg.rejects.max_per_reason))
            if cfg.rejects.enabled
            else None
        )
        writer = stack.enter_context(ParquetShardWriter(out_dir, f"part-{index:05d}", cfg.shard_max_bytes))
        for doc in run_steps(docs, build_file_steps(cfg, histogram), stats, rejects):
            writer.write(doc)
    return {
        "parts": [p.name for p in writer.paths],
        "rejects": [p.name for p in rejects.paths] if rejects else [],
        "stats": stats.to_dict(),
        "docs": writer.docs,
        "docs_read": stats.steps["read"].get("docs_out", 0),
        "quality_histogram": histogram,
    }


def _link_or_copy(src: Path, dst: Path) -> None:
    """A hard link, not a move: a rerun after a kill between two of these still finds every shard."""
    try:
        os.link(src, dst)
    except OSError:  # another filesystem
        shutil.copyfile(src, dst)


def _timed(phase: str, map_calls: Mapper, calls: list[Call], docs: int) -> list[dict]:
    t0 = time.time()
    results = map_calls(phase, calls)
    dt = max(time.time() - t0, 1e-9)
    docs = docs or sum(r.get("docs_read", 0) for r in results)  # the filter phase learns its count from its results
    reused = sum(1 for r in results if r.get("reused"))
    log.info(
        "%s: %d partitions (%d reused from an earlier run) in %.1fs, %s docs/s",
        phase,
        len(calls),
        reused,
        dt,
        f"{docs / dt:,.0f}",
    )
    return results


def _top_fraction_threshold(cfg: CleanConfig, filtered: list[dict]) -> float | None:
    """With `classifier.keep.top_fraction`: the score threshold from every file's histogram
    (O(bins) memory, exact to 1/bins), applied when the final shards are written."""
    if cfg.classifier is None or cfg.classifier.keep.top_fraction is None:
        return None
    merged = [sum(col) for col in zip(*(r["quality_histogram"] for r in filtered))] or [0] * HIST_BINS
    threshold = threshold_for_top_fraction(merged, cfg.classifier.keep.top_fraction)
    log.info(
        "quality classifier: keeping the top %.1f%% of %d scored documents: score >= %.3f",
        100 * cfg.classifier.keep.top_fraction,
        sum(merged),
        threshold,
    )
    return threshold


def clean_corpus(
    files: list[Path], cfg: CleanConfig, work: Path, out_dir: Path, map_calls: Mapper = serial_map
) -> tuple[list[Path], Stats]:
    """Filter every file, dedup the corpus, hard-link the final shards into `out_dir`."""
    stats = Stats()
    filtered, part_files = filter_partitions(files, cfg, work, map_calls, stats)
    docs = sum(r["docs"] for r in filtered)
    layout = DedupLayout(work / "dedup", buckets_for(docs, cfg.partition_docs))
    log.info("dedup: %d documents in %d parts, %d buckets", docs, len(part_files), layout.buckets)
    if cfg.minhash.enabled and docs:
        minhash_dedup(part_files, docs, cfg, layout, map_calls, stats)
    line_dedup = cfg.line_dedup.enabled and docs > 0
    if line_dedup:
        find_repeated_line_drops(part_files, docs, cfg, layout, map_calls, stats)
    min_quality = _top_fraction_threshold(cfg, filtered)
    shards = write_shards(part_files, docs, cfg, layout, line_dedup, min_quality, out_dir, map_calls, stats)
    rejected = [name for r in filtered for name in r.get("rejects", [])]
    if rejected:
        (out_dir / "rejects").mkdir()
        for name in rejected:
            _link_or_copy(work / "parts" / name, out_dir / "rejects" / name)
    return shards, stats


def filter_partitions(
    files: list[Path], cfg: CleanConfig, work: Path, map_calls: Mapper, stats: Stats
) -> tuple[list[dict], list[list[Path]]]:
    """Every partition of the input through the per-document filters: (each partition's result, the part files
    each wrote under `work/parts`)."""
    parts_dir = work / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    groups = plan_partitions(files, cfg.partition_bytes, cfg.split_text_on_blank_lines)
    cut = len({p.path for g in groups for p in g if p.start or p.end is not None})
    log.info(
        "filter: %d input files in %d partition%s of up to %s bytes (%d large files cut in pieces)",
        len(files),
        len(groups),
        "" if len(groups) == 1 else "s",
        f"{cfg.partition_bytes:,}",
        cut,
    )
    calls = [
        (
            work / "done" / f"filter-{i:05d}.json",
            clean_partition,
            {"pieces": group, "cfg": cfg, "out_dir": parts_dir, "index": i},
        )
        for i, group in enumerate(groups)
    ]
    filtered = _timed("filter", map_calls, calls, 0)
    for r in filtered:
        stats.merge(Stats.from_dict(r["stats"]))
    return filtered, [[parts_dir / name for name in r["parts"]] for r in filtered]


def minhash_dedup(
    part_files: list[list[Path]], docs: int, cfg: CleanConfig, layout: DedupLayout, map_calls: Mapper, stats: Stats
) -> None:
    """Near-duplicate clusters across the corpus: band hashes per part, candidate pairs per bucket, verified
    clusters (the drops are applied when the shards are written)."""
    m, n = cfg.minhash, len(part_files)
    bands = [
        (layout.marker("bands", i), write_band_hashes, {"part": i, "files": fs, "layout": layout, "cfg": m})
        for i, fs in enumerate(part_files)
    ]
    _timed("minhash signatures", map_calls, bands, docs)
    pairs = [
        (layout.marker("pairs", b), find_candidates, {"bucket": b, "parts": n, "layout": layout})
        for b in range(layout.buckets)
    ]
    _timed("minhash buckets", map_calls, pairs, docs)
    resolve = [(layout.marker("clusters", 0), resolve_clusters, {"part_files": part_files, "layout": layout, "cfg": m})]
    [clusters] = _timed("minhash clusters", map_calls, resolve, docs)
    stats.add(
        "minhash_dedup",
        docs_in=docs,
        docs_out=docs - clusters["dropped_near_duplicate"],
        **{k: clusters[k] for k in ("dropped_near_duplicate", "candidate_pairs", "verified_pairs", "clusters")},
    )


def find_repeated_line_drops(
    part_files: list[list[Path]], docs: int, cfg: CleanConfig, layout: DedupLayout, map_calls: Mapper, stats: Stats
) -> None:
    """Lines repeated across the corpus: hashes per part, repeated lines per bucket (dropped when the shards are
    written)."""
    hashes = [
        (layout.marker("lines", i), write_line_hashes, {"part": i, "files": fs, "layout": layout})
        for i, fs in enumerate(part_files)
    ]
    _timed("line hashes", map_calls, hashes, docs)
    args = {"parts": len(part_files), "layout": layout, "mode": cfg.line_dedup.mode}
    buckets = [
        (layout.marker("line-drops", b), find_repeated_lines, {"bucket": b, **args}) for b in range(layout.buckets)
    ]
    repeated = _timed("line buckets", map_calls, buckets, docs)
    stats.add("line_dedup", lines_dropped=sum(r["lines_dropped"] for r in repeated))


def write_shards(
    part_files: list[list[Path]],
    docs: int,
    cfg: CleanConfig,
    layout: DedupLayout,
    line_dedup: bool,
    min_quality: float | None,
    out_dir: Path,
    map_calls: Mapper,
    stats: Stats,
) -> list[Path]:
    """Each part without its dropped documents and lines, as Parquet shards linked into `out_dir`."""
    args = {
        "layout": layout,
        "line_dedup": line_dedup,
        "min_words_after": cfg.line_dedup.min_words_after,
        "shard_max_bytes": cfg.shard_max_bytes,
        "min_quality_score": min_quality,
    }
    calls = [
        (layout.marker("final", i), write_final_part, {"part": i, "files": fs, **args})
        for i, fs in enumerate(part_files)
    ]
    written = _timed("write", map_calls, calls, docs)
    shards = []
    for r in written:
        if line_dedup:
            stats.add("line_dedup", **{k: r[k] for k in ("docs_in", "docs_out", "dropped_too_short_after_line_dedup")})
        if min_quality is not None:
            stats.add(
                "quality_top_fraction",
                docs_in=r["quality_in"],
                docs_out=r["quality_in"] - r["dropped_quality_below_top_fraction"],
                dropped_quality_below_top_fraction=r["dropped_quality_below_top_fraction"],
            )
        for name in r["shards"]:
            _link_or_copy(layout.final() / name, out_dir / name)
            shards.append(out_dir / name)
    stats.add(
        "output",
        docs_out=sum(r["written"] for r in written),
        bytes_out=sum(r["bytes"] for r in written),
        shards=len(shards),
    )
    return shards
