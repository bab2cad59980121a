"""clean-data and tokenize on a corpus of many small files against the same documents in a few files.

    .venv/bin/python -m benchmarks.clean_data_many_files [--docs 10000] [--files 10000] [--per-file 1000]

The documents: ~0.9-1 KB blocks of the shared data's English text (TinyStories, Gutenberg,
inaugural addresses, Shakespeare). The same documents are written as `--files` `.txt` files, as
10 files and as one (cut into pieces of `partition_bytes`), and `lmforge clean-data` (the CLI, a
temporary Prefect server, the process runner, every filter and dedup step) cleans each; the
wall time includes the server's start, as a user's run does. Then `lmforge tokenize --input` on
each (a 512-token BPE and the encoding). `--per-file N` also runs the first N small files with
`partition_bytes: 1` (one task per file and step, how clean-data partitioned before: a
one-document file has no blank line to be cut at) to show what grouping saves.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from common.paths import data_root

LMFORGE = str(Path(sys.executable).parent / "lmforge")


def documents(n: int, size: int = 900) -> list[str]:
    """`n` documents of about `size` bytes: consecutive paragraphs of the shared English text joined."""
    d = data_root()
    blocks: list[str] = []
    sources = ("tinystories-train-lowercased", "tinystories-train-sample", "nltk-gutenberg", "nltk-inaugural")
    sources += ("tinyshakespeare",)
    for f in [f for name in sources for f in sorted((d / name).glob("*"))]:
        blocks += [b.strip() for b in f.read_text(errors="replace").split("\n\n") if b.strip()]
    docs, cur = [], ""
    for block in blocks:
        cur = f"{cur} {block}".strip()
        if len(cur) >= size:
            docs.append(cur)
            cur = ""
            if len(docs) == n:
                return docs
    raise SystemExit(f"the shared data holds {len(docs)} documents of ~{size} bytes, fewer than {n}")


def write_files(docs: list[str], folder: Path, files: int) -> None:
    """The documents in `files` text files, consecutive, blank-line separated."""
    folder.mkdir(parents=True)
    per = -(-len(docs) // files)
    for k in range(files):
        chunk = docs[k * per : (k + 1) * per]
        if chunk:
            (folder / f"docs-{k:05d}.txt").write_text("\n\n".join(chunk) + "\n")


def lmforge(args: list[str], home: Path) -> tuple[float, Path]:
    """Run one lmforge command in its own home; (wall seconds, the artifact dir it printed)."""
    env = {**os.environ, "LMFORGE_HOME": str(home), "PREFECT_API_URL": ""}
    t0 = time.perf_counter()
    r = subprocess.run([LMFORGE, *args], env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"lmforge {' '.join(args)} failed:\n{r.stderr[-3000:]}")
    return dt, Path(r.stdout.strip().splitlines()[-1])


def texts(artifact: Path) -> list[str]:
    return pq.read_table(sorted(artifact.glob("shard-*.parquet")), columns=["text"]).column("text").to_pylist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--per-file", type=int, default=0, help="also N small files with one task per file (before)")
    args = ap.parse_args()
    docs = documents(args.docs)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        grouped, per_file = root / "grouped.yaml", root / "per-file.yaml"
        common = "split_text_on_blank_lines: true\nquality: {min_words: 20}\n"
        grouped.write_text(common)
        per_file.write_text(common + "partition_bytes: 1\n")
        write_files(docs, root / "few", 10)
        write_files(docs, root / "many", args.files)
        write_files(docs, root / "one", 1)
        mb = sum(f.stat().st_size for f in (root / "many").iterdir()) / 1e6
        runs = [
            ("10 files", root / "few", grouped),
            (f"{args.files:,} files", root / "many", grouped),
            ("1 file (cut in pieces)", root / "one", grouped),
        ]
        if args.per_file:
            write_files(docs[: args.per_file], root / "per-file", args.per_file)
            runs.append((f"{args.per_file:,} files, a task per file (before)", root / "per-file", per_file))
        print(f"{len(docs):,} documents, {mb:.1f} MB")
        times, outputs = {}, {}
        for name, folder, config in runs:
            times[name], outputs[name] = lmforge(["clean-data", str(folder), "-c", str(config)], root / name)
            print(f"clean-data, {name:45s} {times[name]:7.1f} s")
        (few, few_out), (many, many_out), (_, one_out) = ((times[r[0]], outputs[r[0]]) for r in runs[:3])
        # a near-duplicate cluster keeps its lowest document id, and ids name the file: the one-file
        # layout may keep another member of a cluster, never another number of documents
        counts = {len(texts(out)) for out in (few_out, many_out, one_out)}
        same = texts(few_out) == texts(many_out)
        print(
            f"clean-data, many files / few files: {many / few:.2f}x the wall time, "
            f"{'the same documents out' if same else 'DIFFERENT documents out'}; "
            f"documents out of the three: {' = '.join(map(str, counts)) if len(counts) == 1 else sorted(counts)}"
        )
        tokenize = {}
        for name, folder, _ in runs[:3]:
            tokenize[name], _ = lmforge(["tokenize", "--input", str(folder), "--vocab-size", "512"], root / name)
            print(f"tokenize --input, {name:39s} {tokenize[name]:7.1f} s")
        print(f"tokenize, many files / few files: {tokenize[runs[1][0]] / tokenize[runs[0][0]]:.2f}x the wall time")


if __name__ == "__main__":
    main()
