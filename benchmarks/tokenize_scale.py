"""The whole tokenize stage on a 1M-document clean-data output: wall, MB/s per phase, peak memory.

    .venv/bin/python -m benchmarks.tokenize_scale [--docs 1000000] [--vocab-size 32000] [--workdir DIR]

The corpus is clean_data_scale's (~200-word English documents from the shared data's real
sentences, 1% planted near-duplicates), cleaned by the real clean-data steps into Parquet
shards, as a clean-data artifact holds them; `--workdir` keeps both for the next run. Then
`lmforge tokenize --input <shards>` runs as a user runs it (its own process, its task runner's
worker processes): BPE on the `train_bytes` sample, every document encoded. Memory is polled
every 0.2 s over the command's process tree: the largest process, and the sum over the stage's
processes (the Prefect API server the command starts for itself is reported apart).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psutil

from benchmarks.clean_data import process_mapper
from benchmarks.clean_data_scale import build_corpus


class TreeRSS:
    """Peak resident memory of a process tree: the largest process and the stage's total."""

    def __init__(self, root: int) -> None:
        self.root = psutil.Process(root)
        self.largest = self.total = self.server = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            stage = server = 0
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for p in procs:
                try:
                    rss = p.memory_info().rss
                    is_server = "uvicorn" in " ".join(p.cmdline()) or "prefect.server" in " ".join(p.cmdline())
                except psutil.NoSuchProcess:
                    continue
                self.largest = max(self.largest, rss)
                if is_server:
                    server += rss
                else:
                    stage += rss
            self.total, self.server = max(self.total, stage), max(self.server, server)
            time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def clean_shards(workdir: Path, n_docs: int) -> list[Path]:
    """The clean-data steps' Parquet shards for an n_docs corpus (built once per workdir)."""
    from filters.config import CleanConfig
    from filters.pipeline import clean_corpus

    out = workdir / f"clean-{n_docs}"
    if (out / "done").exists():
        return sorted(out.glob("shard-*.parquet"))
    (workdir / f"in-{n_docs}").mkdir(parents=True, exist_ok=True)
    build_corpus(workdir / f"in-{n_docs}", n_docs)
    files = sorted((workdir / f"in-{n_docs}").glob("*.jsonl"))
    cfg = CleanConfig(inputs=[str(workdir / f"in-{n_docs}")])
    out.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        shards, _ = clean_corpus(files, cfg, workdir / f"work-{n_docs}", out, process_mapper(pool, {}))
    print(f"clean-data: {n_docs:,} documents in {time.perf_counter() - t0:.0f} s -> {len(shards)} shards")
    (out / "done").write_text("")
    return sorted(Path(s) for s in shards)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--vocab-size", type=int, default=32_000)
    ap.add_argument("--workdir", help="where the corpus and its clean shards are kept for the next run")
    args = ap.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="lmforge-tokenize-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    shards = clean_shards(workdir, args.docs)
    shard_mb = sum(s.stat().st_size for s in shards) / 1e6
    home = Path(tempfile.mkdtemp(prefix="lmforge-home-"))
    cmd = [
        str(Path(sys.executable).parent / "lmforge"),
        "tokenize",
        "--vocab-size",
        str(args.vocab_size),
        *[arg for shard in shards for arg in ("--input", str(shard))],
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, "LMFORGE_HOME": str(home)})
    rss = TreeRSS(proc.pid)
    rc = proc.wait()
    wall = time.perf_counter() - t0
    rss.stop()
    if rc != 0:
        raise SystemExit(f"lmforge tokenize exited {rc}")
    meta = json.loads(next(home.rglob("meta.json")).read_text())
    mb = meta["text_bytes"] / 1e6
    bpe = meta["bpe"]
    print(
        f"| {meta['documents']:,} documents, {mb:,.0f} MB of text ({shard_mb:,.0f} MB of Parquet), "
        f"vocab {meta['vocab_size']:,} | {wall:.0f} s | BPE on the sample: pretokenize {bpe['pretokenize_s']:.1f} s "
        f"({bpe['pretokenize_mb_per_s']:.0f} MB/s), merges {bpe['merge_s']:.1f} s | "
        f"{meta['train_tokens'] + meta['val_tokens']:,} tokens, {mb / wall:.1f} MB/s overall | "
        f"largest process {rss.largest / 1e9:.2f} GB, stage total {rss.total / 1e9:.2f} GB "
        f"(+ Prefect server {rss.server / 1e9:.2f} GB) |"
    )


if __name__ == "__main__":
    main()
