"""The clean-data pipeline as two library calls: per-file work, then corpus-level dedup.

`clean_file` (read → language ID → PII → Gopher quality → Gopher repetition) is
independent per input file, so the flow maps it over files in parallel. `dedup_corpus`
needs the whole corpus: MinHash document dedup, then exact line dedup.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from filters.base import Step, run_steps
from filters.config import CleanConfig
from filters.dedup import LineDeduper, MinHashConfig, count_lines, minhash_dedup
from filters.document import Stats
from filters.gopher import GopherQualityFilter, GopherRepetitionFilter
from filters.langid import LanguageFilter
from filters.pii import PIIMasker
from filters.readers import read_documents
from filters.writer import ParquetShardWriter, read_shards, row_to_document

log = logging.getLogger("lmforge.filters.pipeline")


def build_file_steps(cfg: CleanConfig) -> list[Step]:
    steps: list[Step] = []
    if cfg.language.enabled:
        steps.append(LanguageFilter(cfg.language.languages, cfg.language.threshold))
    if cfg.pii.enabled:
        steps.append(PIIMasker(cfg.pii.emails, cfg.pii.phones, cfg.pii.ips))
    if cfg.quality.enabled:
        steps.append(GopherQualityFilter(**cfg.quality.model_dump(exclude={"enabled"})))
    if cfg.repetition.enabled:
        r = cfg.repetition
        steps.append(
            GopherRepetitionFilter(
                r.dup_line_frac, r.dup_para_frac, r.dup_line_char_frac, r.dup_para_char_frac,
                tuple(map(tuple, r.top_n_grams)), tuple(map(tuple, r.dup_n_grams)),
            )
        )
    return steps


def clean_file(path: Path, cfg: CleanConfig, out_dir: Path, index: int) -> tuple[list[Path], dict]:
    """Run the per-file steps on one input; write its survivors as `part-<index>` shards."""
    stats = Stats()
    docs = read_documents(Path(path), stats, cfg.max_doc_chars, cfg.split_text_on_blank_lines)
    with ParquetShardWriter(out_dir, f"part-{index:05d}", cfg.shard_max_bytes) as writer:
        for doc in run_steps(docs, build_file_steps(cfg), stats):
            writer.write(doc)
    return writer.paths, stats.to_dict()


def dedup_corpus(parts: list[Path], cfg: CleanConfig, out_dir: Path) -> tuple[list[Path], dict]:
    """MinHash document dedup, then exact line dedup, over all part shards; write final shards."""
    stats = Stats()
    ids = pq.read_table(parts, columns=["id"]).column("id").to_pylist() if parts else []
    keep = np.ones(len(ids), dtype=bool)

    if cfg.minhash.enabled and ids:
        texts = pq.read_table(parts, columns=["text"]).column("text").to_pylist()
        m = cfg.minhash
        result = minhash_dedup(texts, ids, MinHashConfig(m.ngram, m.bands, m.rows, m.threshold, m.seed))
        keep = result.keep
        del texts
        stats.add(
            "minhash_dedup",
            docs_in=len(ids),
            docs_out=int(keep.sum()),
            dropped_near_duplicate=int((~keep).sum()),
            candidate_pairs=result.candidate_pairs,
            verified_pairs=result.verified_pairs,
            clusters=result.clusters,
        )

    deduper = None
    if cfg.line_dedup.enabled:
        kept_texts = (row["text"] for i, row in enumerate(read_shards(parts, ["text"])) if keep[i])
        deduper = LineDeduper(count_lines(kept_texts), cfg.line_dedup.mode)

    min_words = cfg.line_dedup.min_words_after
    with ParquetShardWriter(out_dir, "shard", cfg.shard_max_bytes) as writer:
        for i, row in enumerate(read_shards(parts)):
            if not keep[i]:
                continue
            doc = row_to_document(row)
            if deduper is not None:
                stats.add("line_dedup", docs_in=1)
                doc.text = deduper(doc.text)
                if len(doc.text.split()) < max(min_words, 1):
                    stats.add("line_dedup", dropped_too_short_after_line_dedup=1)
                    continue
                stats.add("line_dedup", docs_out=1)
            writer.write(doc)
    if deduper is not None:
        stats.add("line_dedup", lines_dropped=deduper.lines_dropped)
    stats.add("output", docs_out=writer.docs, bytes_out=writer.bytes, shards=len(writer.paths))
    return writer.paths, stats.to_dict()
