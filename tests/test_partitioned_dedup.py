"""Partitioned dedup: the same documents and lines as the in-memory reference, any bucket
count; a killed run resumes from its finished partitions and gives the same artifact."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from filters.config import CleanConfig, MinHashDedupConfig
from filters.dedup import LineDeduper, count_lines, minhash_dedup
from filters.pipeline import clean_corpus

LMFORGE = str(Path(sys.executable).parent / "lmforge")


def _corpus(data: Path, out: Path, files: int = 3) -> list[Path]:
    """Real sentences in ~120-word documents, with planted near-duplicates (~1% of words
    replaced), exact copies and shared boilerplate lines, split over several files."""
    rng = random.Random(7)
    words = " ".join((data / "tinystories-val-sample" / "tinystories_val.txt").read_text().split()).split(" ")
    docs = []
    for i in range(600):
        start = rng.randrange(len(words) - 130)
        body = " ".join(words[start : start + 120])
        footer = "\nShare this story with a friend today." if i % 7 == 0 else ""
        docs.append((f"d{i:04d}", body + footer))
    for j in range(60):  # near-duplicates of earlier documents
        src_id, src = docs[rng.randrange(600)]
        w = src.split(" ")
        for _ in range(max(1, len(w) // 100)):
            w[rng.randrange(len(w))] = "zebra"
        docs.append((f"n{j:04d}", " ".join(w)))
    docs += [(f"x{j:04d}", docs[j][1]) for j in range(10)]  # exact copies
    rng.shuffle(docs)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(files):
        p = out / f"part{k}.jsonl"
        p.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in docs[k::files]))
        paths.append(p)
    return paths


def _rows(shards: list[Path]) -> list[tuple[str, str]]:
    return [(r["id"], r["text"]) for s in sorted(shards) for r in pq.read_table(s, columns=["id", "text"]).to_pylist()]


FILTERS_OFF = {"language": {"enabled": False}, "quality": {"enabled": False}, "repetition": {"enabled": False}, "pii": {"enabled": False}}


@pytest.mark.parametrize("partition_docs,batch_docs", [(100_000, 1024), (1_000, 4)])  # one bucket; many buckets and small batches
def test_partitioned_dedup_matches_the_in_memory_reference(tmp_path, data, partition_docs, batch_docs, monkeypatch):
    import filters.partitioned_dedup as pd

    monkeypatch.setattr(pd, "BATCH_DOCS", batch_docs)  # batches with no candidate document in them, too
    files = _corpus(data, tmp_path / "in")
    cfg = CleanConfig(inputs=[str(f) for f in files], partition_docs=partition_docs, **FILTERS_OFF)
    out = tmp_path / "out"
    out.mkdir()
    shards, stats = clean_corpus(files, cfg, tmp_path / "work", out)

    # reference: the whole corpus in memory, datasketch's LSH, one dict of line counts
    parts = sorted((tmp_path / "work" / "parts").glob("part-*.parquet"))
    table = pq.read_table(parts, columns=["id", "text"])
    ids, texts = table.column("id").to_pylist(), table.column("text").to_pylist()
    keep = minhash_dedup(texts, ids, MinHashDedupConfig()).keep
    kept = [(i, t) for i, t, k in zip(ids, texts, keep) if k]
    dedup = LineDeduper(count_lines(t for _, t in kept))
    expected = [(i, d) for i, d in ((i, dedup(t)) for i, t in kept) if len(d.split()) >= 5]

    assert _rows(shards) == expected
    m = stats.to_dict()["minhash_dedup"]
    assert m["dropped_near_duplicate"] == int((~keep).sum()) >= 60  # the planted copies went
    assert stats.to_dict()["line_dedup"]["lines_dropped"] == dedup.lines_dropped > 0
    dropped = {i for i, k in zip(ids, keep) if not k}
    assert sum(1 for i in dropped if i[0] in "nx") >= 60


@pytest.mark.slow
def test_kill_9_mid_dedup_resumes_from_finished_partitions(tmp_path, data, prefect_server):
    _corpus(data, tmp_path / "in", files=6)
    env_base = {**__import__("os").environ, "PREFECT_LOGGING_LEVEL": "INFO", "PREFECT_API_URL": prefect_server}
    home = tmp_path / "home"
    cmd = [LMFORGE, "clean-data", str(tmp_path / "in")]
    env = {**env_base, "LMFORGE_HOME": str(home)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 180
    while len(list(home.glob("work/clean-data-*/dedup/done/bands-*.json"))) < 2:
        assert proc.poll() is None and time.time() < deadline, "never reached the dedup phase"
        time.sleep(0.05)
    import os

    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list(home.glob("artifacts/clean-data/*/manifest.json"))

    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    reused = [int(x) for x in __import__("re").findall(r"\((\d+) reused from an earlier run\)", r.stderr)]
    assert reused and reused[0] == 6 and sum(reused) >= 8, r.stderr[-3000:]  # every filter partition, and the hashed parts
    resumed = Path(r.stdout.strip().splitlines()[-1])

    fresh = subprocess.run(cmd, env={**env_base, "LMFORGE_HOME": str(tmp_path / "fresh")}, capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    whole = Path(fresh.stdout.strip().splitlines()[-1])
    assert resumed.name == whole.name  # same key
    assert _rows(list(resumed.glob("shard-*.parquet"))) == _rows(list(whole.glob("shard-*.parquet")))
    assert json.loads((resumed / "stats.json").read_text()) == json.loads((whole / "stats.json").read_text())


def test_vectorised_signatures_equal_datasketch(data):
    """The signatures clean-data computes are datasketch's (same hash family, same seed), at any block size."""
    from datasketch import MinHash

    import filters.partitioned_dedup as pd
    from filters.dedup import shingles

    text = (data / "tinystories-val-sample" / "tinystories_val.txt").read_text()
    sets = [shingles(block) for block in text.split("\n\n")[:300] if block.strip()] + [shingles("tiny")]
    reference = np.stack([m.hashvalues for m in MinHash.bulk(sets, num_perm=112, seed=3)])
    for block in (7, pd.SHINGLES_PER_BLOCK):
        pd.SHINGLES_PER_BLOCK, saved = block, pd.SHINGLES_PER_BLOCK
        try:
            assert np.array_equal(pd.minhash_signatures(sets, 112, 3), reference)
        finally:
            pd.SHINGLES_PER_BLOCK = saved


def test_rejects_show_what_each_rule_dropped(tmp_path, data):
    """With rejects on, the artifact holds a capped sample of dropped documents with rule and reason."""
    files = [data / "cc-en-jsonl" / f for f in sorted(p.name for p in (data / "cc-en-jsonl").iterdir())]
    files.append(data / "web-warc-samples" / "dolma-wget-sample-0000.warc.gz")
    cfg = CleanConfig(inputs=[str(f) for f in files], rejects={"enabled": True, "max_per_reason": 2})
    out = tmp_path / "out"
    out.mkdir()
    _, stats = clean_corpus(files, cfg, tmp_path / "work", out)
    rows = [r for s in sorted((out / "rejects").glob("*.parquet")) for r in pq.read_table(s).to_pylist()]
    meta = [json.loads(r["metadata"]) for r in rows]
    assert rows and all(m["rejected_by"] and m["reason"] for m in meta)
    counts: dict = {}
    for m in meta:
        counts[(m["rejected_by"], m["reason"])] = counts.get((m["rejected_by"], m["reason"]), 0) + 1
    assert max(counts.values()) <= 2 * len(files)  # the cap holds per input file
    dropped = {(step, k.removeprefix("dropped_")) for step, c in stats.to_dict().items() for k in c if k.startswith("dropped_")}
    assert set(counts) <= dropped and len(set(counts)) >= 2  # every sampled reason is one the stats counted
