"""clean-data at growing corpus sizes: docs/s, peak RSS of the largest process, dedup quality.

    .venv/bin/python -m benchmarks.clean_data_scale [--sizes 100000 300000 1000000] [--workers 2]

Corpora: ~200-word English documents recombined from the shared data's real sentences,
with 1% planted near-duplicates (~1% of words replaced), 8 JSONL files. The whole stage
runs (language ID, Gopher quality + repetition, MinHash, line dedup) through the same
partition steps the flow maps, on a process pool. Peak RSS is polled (every 0.2 s) over
this process and every worker; dedup is scored at the pair level: a planted pair is found
when exactly one of its two documents survives, and precision counts removed documents
that belong to no planted pair (so a tool that keeps an arbitrary member of a cluster, as
datatrove does, is scored fairly). `--datatrove` also runs datatrove (language ID, Gopher
rules, its 4-stage MinHash; benchmarks/datatrove_pipeline.py, in its own venv, see
BENCHMARKS.md) on the smallest corpus and prints the docs/s ratio.
"""

from __future__ import annotations

import argparse
import glob
import json
import random
import re
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psutil

from benchmarks.clean_data import process_mapper
from common.paths import data_root


def sentences() -> list[str]:
    d = data_root()
    out: list[str] = []
    for pattern in (
        "tinystories-train-lowercased/*",
        "tinystories-train-sample/*",
        "tinystories-val-sample/*",
        "nltk-gutenberg/*.txt",
        "nltk-inaugural/*.txt",
    ):
        for f in sorted(glob.glob(str(d / pattern))):
            text = " ".join(Path(f).read_bytes().decode("utf-8", "replace").split())
            out += [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if 6 <= len(s.split()) <= 60]
    return out


def build_corpus(out_dir: Path, n_docs: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pool = sentences()
    files = [open(out_dir / f"input-{k}.jsonl", "w") for k in range(8)]
    planted: list[tuple[str, str]] = []
    n_dups = n_docs // 100
    originals: list[str] = []
    for i in range(n_docs - n_dups):
        words, paragraphs, para = 0, [], []
        while words < 200:
            s = rng.choice(pool)
            para.append(s)
            words += len(s.split())
            if len(para) == 4:
                paragraphs.append(" ".join(para))
                para = []
        paragraphs.append(" ".join(para))
        text = "\n".join(p for p in paragraphs if p)
        if len(originals) < n_dups * 4:
            originals.append(text)
        files[i % 8].write(json.dumps({"id": f"doc-{i:07d}", "text": text}) + "\n")
    for j in range(n_dups):
        k = rng.randrange(len(originals))
        w = originals[k].split(" ")
        for _ in range(max(1, len(w) // 100)):
            w[rng.randrange(len(w))] = rng.choice(pool).split(" ")[0]
        files[j % 8].write(json.dumps({"id": f"dup-{j:07d}", "text": " ".join(w)}) + "\n")
        planted.append((f"doc-{k:07d}", f"dup-{j:07d}"))
    for f in files:
        f.close()
    return planted


class PeakRSS:
    """Largest resident set of this process or any descendant, polled in the background."""

    def __init__(self) -> None:
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            for p in [me, *me.children(recursive=True)]:
                try:
                    self.peak = max(self.peak, p.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass
            time.sleep(0.2)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def pair_scores(filtered: set[str], kept: set[str], planted: list[tuple[str, str]]) -> dict:
    removed = filtered - kept
    findable = [(a, b) for a, b in planted if a in filtered and b in filtered]
    found = sum(1 for a, b in findable if (a in kept) != (b in kept))
    in_pairs = {x for pair in findable for x in pair}
    wrong = len(removed - in_pairs)
    return {
        "recall": found / max(len(findable), 1),
        "precision": 1 - wrong / max(len(removed), 1),
        "pairs": len(findable),
    }


def run_datatrove_side(tmp: Path, planted: list[tuple[str, str]], n_docs: int) -> dict:
    from benchmarks.clean_data import run_datatrove

    r = run_datatrove(tmp / "in", tmp / "datatrove")
    return {
        "docs_per_s": n_docs / r["seconds"],
        "seconds": r["seconds"],
        **pair_scores(r["after_filters"], r["kept"], planted),
    }


def run(n_docs: int, workers: int, partition_docs: int, datatrove: bool = False, minhash_hash: str = "xxh64") -> dict:
    import pyarrow.parquet as pq

    from filters.config import CleanConfig
    from filters.pipeline import clean_corpus

    tmp = Path(tempfile.mkdtemp(prefix=f"lmforge-scale-{n_docs}-"))
    (tmp / "in").mkdir()
    planted = build_corpus(tmp / "in", n_docs)
    files = sorted((tmp / "in").glob("*.jsonl"))
    mb = sum(f.stat().st_size for f in files) / 1e6
    cfg = CleanConfig(inputs=[str(tmp / "in")], partition_docs=partition_docs, minhash={"hash": minhash_hash})
    (tmp / "out").mkdir()
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    with PeakRSS() as rss, ProcessPoolExecutor(workers) as pool:
        shards, _ = clean_corpus(files, cfg, tmp / "work", tmp / "out", process_mapper(pool, seconds))
    total = time.perf_counter() - t0
    filtered = set(
        pq.read_table(sorted((tmp / "work" / "parts").glob("*.parquet")), columns=["id"]).column("id").to_pylist()
    )
    kept = set(pq.read_table(shards, columns=["id"]).column("id").to_pylist())
    dedup_s = total - seconds["filter"]
    peer = {"datatrove": run_datatrove_side(tmp, planted, n_docs)} if datatrove else {}
    phases = ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items())
    return {
        **peer,
        "phases": phases,
        "docs": n_docs,
        "input_mb": mb,
        "seconds": total,
        "docs_per_s": n_docs / total,
        "filter_docs_per_s": n_docs / seconds["filter"],
        "dedup_docs_per_s": len(filtered) / dedup_s,
        "peak_rss_gb": rss.peak / 1e9,
        **pair_scores(filtered, kept, planted),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--partition-docs", type=int, default=100_000)
    ap.add_argument("--datatrove", action="store_true", help="run datatrove side by side on the smallest size")
    ap.add_argument("--minhash-hash", choices=["xxh64", "sha1"], default="xxh64", help="MinHash's shingle hash family")
    args = ap.parse_args()
    print(
        "| documents | text MB | wall s | docs/s | filters docs/s | dedup docs/s | peak RSS (largest process) | "
        "recall | precision |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        r = run(
            n,
            args.workers,
            args.partition_docs,
            datatrove=args.datatrove and n == min(args.sizes),
            minhash_hash=args.minhash_hash,
        )
        print(
            f"| {r['docs']:,} | {r['input_mb']:.0f} | {r['seconds']:.0f} | {r['docs_per_s']:,.0f} | "
            f"{r['filter_docs_per_s']:,.0f} | "
            f"{r['dedup_docs_per_s']:,.0f} | {r['peak_rss_gb']:.2f} GB | {r['recall']:.3f} | {r['precision']:.4f} |",
            flush=True,
        )
        print(f"  phases: {r['phases']}", flush=True)
        if "datatrove" in r:
            d = r["datatrove"]
            print(
                f"datatrove at {n:,}: {d['docs_per_s']:,.0f} docs/s ({d['seconds']:.0f} s), dedup recall "
                f"{d['recall']:.3f}, "
                f"precision {d['precision']:.4f}; ratio lmforge/datatrove {r['docs_per_s'] / d['docs_per_s']:.1f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
