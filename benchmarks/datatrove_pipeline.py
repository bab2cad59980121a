"""The datatrove side of benchmarks/clean_data.py; runs in benchmarks/.venv-datatrove.

    python datatrove_pipeline.py INPUT_DIR WORK_DIR LID_176_FTZ

Language ID (lid.176, en >= 0.65) → Gopher repetition → Gopher quality, then datatrove's
4-stage MinHash (5-grams, 14 buckets × 8 hashes, 64-bit), 2 workers. Prints one JSON line.
"""

import json
import os
import sys
import time
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.dedup import MinhashDedupSignature  # noqa: E402
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter  # noqa: E402
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter, LanguageFilter  # noqa: E402
from datatrove.pipeline.readers import JsonlReader  # noqa: E402
from datatrove.pipeline.writers import JsonlWriter  # noqa: E402
from datatrove.utils.hashing import HashConfig  # noqa: E402
from datatrove.utils.lid import FT176LID  # noqa: E402

WORKERS = 2
# at import, so the re-imported module in every datatrove worker loads the bundled model too
FT176LID.MODEL_URL = f"file://{sys.argv[3]}" if len(sys.argv) > 3 else FT176LID.MODEL_URL
cfg = MinhashConfig(hash_config=HashConfig(precision=64), num_buckets=14, hashes_per_bucket=8, n_grams=5)


def run(pipeline, tasks, name, work):
    LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=WORKERS, logging_dir=str(work / "logs" / name)).run()


def ids(folder):
    import gzip

    out = []
    for f in sorted(Path(folder).glob("*.jsonl.gz")):
        with gzip.open(f, "rt") as fh:
            out.extend(json.loads(line)["id"] for line in fh)
    return out


def main() -> None:
    input_dir, work = Path(sys.argv[1]), Path(sys.argv[2])
    os.environ["HF_ASSETS_CACHE"] = str(work / "assets")  # the bundled model is "downloaded" (copied) here
    tasks = len(list(input_dir.glob("*.jsonl")))
    t0 = time.perf_counter()
    run(
        [
            JsonlReader(str(input_dir)),
            LanguageFilter(languages=["en"], language_threshold=0.65),
            GopherRepetitionFilter(),
            GopherQualityFilter(),
            JsonlWriter(str(work / "filtered")),
        ],
        tasks,
        "filter",
        work,
    )
    t1 = time.perf_counter()
    run(
        [JsonlReader(str(work / "filtered")), MinhashDedupSignature(output_folder=str(work / "sigs"), config=cfg)],
        tasks,
        "sigs",
        work,
    )
    run(
        [MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"), config=cfg)],
        cfg.num_buckets,
        "buckets",
        work,
    )
    run(
        [MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove_ids"), config=cfg)],
        1,
        "cluster",
        work,
    )
    run(
        [
            JsonlReader(str(work / "filtered")),
            MinhashDedupFilter(input_folder=str(work / "remove_ids")),
            JsonlWriter(str(work / "out")),
        ],
        tasks,
        "filter_dups",
        work,
    )
    t2 = time.perf_counter()
    print(
        json.dumps(
            {
                "seconds": t2 - t0,
                "filter_seconds": t1 - t0,
                "dedup_seconds": t2 - t1,
                "after_filters": ids(work / "filtered"),
                "kept": ids(work / "out"),
            }
        )
    )


if __name__ == "__main__":  # datatrove's workers re-import this module: run only in the parent
    main()
