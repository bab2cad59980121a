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

from filters.config import CleanConfig
from filters.partitioned_dedup import MinHashDedupConfig
from filters.pipeline import clean_corpus
from tests.dedup_reference import LineDeduper, count_lines, minhash_dedup

LMFORGE = str(Path(sys.executable).parent / "lmforge")


def _corpus(data: Path, out: Path, files: int = 3, planted: list[tuple[str, str]] | None = None) -> list[Path]:
    """Real sentences in ~120-word documents, with planted near-duplicates (~1% of words
    replaced), exact copies and shared boilerplate lines, split over several files; the
    (source, copy) id pairs are appended to `planted`."""
    planted = [] if planted is None else planted
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
        planted.append((src_id, f"n{j:04d}"))
    docs += [(f"x{j:04d}", docs[j][1]) for j in range(10)]  # exact copies
    planted += [(docs[j][0], f"x{j:04d}") for j in range(10)]
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


FILTERS_OFF = {
    "language": {"enabled": False},
    "quality": {"enabled": False},
    "repetition": {"enabled": False},
    "pii": {"enabled": False},
}


def _pair_scores(kept_ids: set[str], all_ids: set[str], planted: list[tuple[str, str]]) -> tuple[float, float]:
    """(recall, precision) at the pair level: a planted pair is found when exactly one of its
    documents survives; precision counts removed documents that are in a planted pair."""
    found = sum((a in kept_ids) != (b in kept_ids) for a, b in planted)
    removed = all_ids - kept_ids
    in_pairs = {d for pair in planted for d in pair}
    return found / len(planted), sum(d in in_pairs for d in removed) / max(len(removed), 1)


@pytest.mark.parametrize(
    "partition_docs,batch_docs", [(100_000, 1024), (1_000, 4)]
)  # one bucket; many buckets and small batches
def test_partitioned_dedup_matches_the_in_memory_reference(tmp_path, data, partition_docs, batch_docs, monkeypatch):
    """With datasketch's hash family the partitioned steps keep exactly what datasketch's LSH
    keeps; with xxh64 (the default) the outcome on the planted pairs is the same within 0.005."""
    import filters.partitioned_dedup as pd

    monkeypatch.setattr(pd, "BATCH_DOCS", batch_docs)  # batches with no candidate document in them, too
    planted: list[tuple[str, str]] = []
    files = _corpus(data, tmp_path / "in", planted=planted)
    cfg = CleanConfig(
        inputs=[str(f) for f in files], partition_docs=partition_docs, minhash={"hash": "sha1"}, **FILTERS_OFF
    )
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

    xx_out = tmp_path / "out-xxh64"
    xx_out.mkdir()
    xx_cfg = cfg.model_copy(update={"minhash": MinHashDedupConfig(hash="xxh64")})
    xx_shards, xx_stats = clean_corpus(files, xx_cfg, tmp_path / "work-xxh64", xx_out)
    reference_scores = _pair_scores({i for i, _ in expected}, set(ids), planted)
    xxh64_scores = _pair_scores({i for i, _ in _rows(xx_shards)}, set(ids), planted)
    assert reference_scores[0] >= 0.95, reference_scores
    assert abs(xxh64_scores[0] - reference_scores[0]) <= 0.005 and abs(xxh64_scores[1] - reference_scores[1]) <= 0.005


@pytest.mark.slow
def test_kill_9_mid_dedup_resumes_from_finished_partitions(tmp_path, data, prefect_server):
    _corpus(data, tmp_path / "in", files=6)
    env_base = {**__import__("os").environ, "PREFECT_LOGGING_LEVEL": "INFO", "PREFECT_API_URL": prefect_server}
    home = tmp_path / "home"
    config = tmp_path / "clean.yaml"
    # a partition per file (~70 KB each: whole, and two do not fit): six to finish, or to resume
    config.write_text("partition_bytes: 100000\n")
    cmd = [LMFORGE, "clean-data", str(tmp_path / "in"), "-c", str(config)]
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
    assert reused and reused[0] == 6 and sum(reused) >= 8, r.stderr[
        -3000:
    ]  # every filter partition, and the hashed parts
    resumed = Path(r.stdout.strip().splitlines()[-1])

    fresh = subprocess.run(
        cmd, env={**env_base, "LMFORGE_HOME": str(tmp_path / "fresh")}, capture_output=True, text=True, timeout=300
    )
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
    texts = [block for block in text.split("\n\n")[:300] if block.strip()] + ["tiny"]
    reference = np.stack([m.hashvalues for m in MinHash.bulk([shingles(t) for t in texts], num_perm=112, seed=3)])
    cfg = MinHashDedupConfig(hash="sha1", bands=14, rows=8, seed=3)
    for block in (7, pd.SHINGLES_PER_BLOCK):
        pd.SHINGLES_PER_BLOCK, saved = block, pd.SHINGLES_PER_BLOCK
        try:
            assert np.array_equal(pd.minhash_signatures(texts, cfg), reference)
        finally:
            pd.SHINGLES_PER_BLOCK = saved


def test_compiled_shingle_hashes_equal_xxhash_of_each_shingle(data):
    """The compiled XXH64 shingle hasher gives the `xxhash` package's value of every shingle
    of `filters.dedup.shingles` (real multilingual text, short and empty documents)."""
    import xxhash

    from filters import shingle_hash
    from filters.dedup import shingles

    if shingle_hash._shingle_hash is None:
        pytest.fail("filters._shingle_hash was not built (make setup builds it with g++)")
    texts = [json.loads(line)["text"] for f in sorted((data / "cc-en-jsonl").iterdir())[:2] for line in f.open()][:300]
    texts += (
        (data / "udhr2-langid")
        .joinpath(sorted(p.name for p in (data / "udhr2-langid").iterdir())[0])
        .read_text()[:20000]
        .split("\n")
    )
    texts += ["", "one", "one two three four five", "one two three four five six", "Ünïcödé  wörds, 句子 和 标点。" * 9]
    for text in texts:
        compiled = shingle_hash.shingle_hashes(text, 5, compiled=True)
        assert np.array_equal(compiled, shingle_hash.shingle_hashes(text, 5, compiled=False))
        assert set(compiled.tolist()) == {xxhash.xxh64_intdigest(sh) for sh in shingles(text, 5)}


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
    dropped = {
        (step, k.removeprefix("dropped_")) for step, c in stats.to_dict().items() for k in c if k.startswith("dropped_")
    }
    assert set(counts) <= dropped and len(set(counts)) >= 2  # every sampled reason is one the stats counted
