"""The `clean-data` flow: raw files → clean, deduplicated Parquet shards + stats.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from filters.config import CleanConfig
from filters.document import Stats
from filters.pipeline import clean_file, dedup_corpus
from filters.readers import expand_inputs
from flows.runners import RunnerConfig, make_task_runner
from flows.stage import run_stage

STAGE = "clean-data"


class EmptyResult(ValueError):
    """Nothing usable came out of the inputs: fail with the per-step counts, publish nothing."""


@task(name="clean-file", task_run_name="clean {path.name}")
def clean_file_task(path: Path, config: CleanConfig, out_dir: Path, index: int) -> tuple[list[Path], dict]:
    """Read → language ID → PII → Gopher quality → Gopher repetition for one file."""
    return clean_file(path, config, out_dir, index)


@task(name="dedup-corpus")
def dedup_corpus_task(parts: list[Path], config: CleanConfig, out_dir: Path) -> tuple[list[Path], dict]:
    """MinHash document dedup, then exact line dedup, over the whole corpus."""
    return dedup_corpus(parts, config, out_dir)


@flow(name="clean-data", flow_run_name="clean-data {config.inputs[0]}", log_prints=True)
def clean_data(config: CleanConfig, runner: RunnerConfig = RunnerConfig(), force: bool = False) -> str:
    """Clean raw documents into deduplicated Parquet shards; returns the artifact directory."""
    logger = get_run_logger()
    unsupported: list[Path] = []
    files = expand_inputs(config.inputs, unsupported)
    logger.info("clean-data: %d input files (%d unsupported, skipped)", len(files), len(unsupported))

    def build(out_dir: Path, work_dir: Path) -> dict:
        parts_dir = out_dir / "_parts"
        parts_dir.mkdir()
        stats = Stats()
        if unsupported:
            stats.add("read", files_unsupported=len(unsupported))
        with make_task_runner(runner) as tr:
            futures = [tr.submit(clean_file_task, {"path": f, "config": config, "out_dir": parts_dir, "index": i}) for i, f in enumerate(files)]
            parts: list[Path] = []
            for fut in futures:
                paths, file_stats = fut.result()
                parts.extend(paths)
                stats.merge(Stats.from_dict(file_stats))
        shards, dedup_stats = dedup_corpus_task(parts, config, out_dir)
        stats.merge(Stats.from_dict(dedup_stats))
        shutil.rmtree(parts_dir)
        (out_dir / "stats.json").write_text(json.dumps(stats.to_dict(), indent=2))
        rows = stats.table_rows()
        create_table_artifact(key="clean-data-stats", table=rows, description="clean-data: documents in/out per step")
        out = stats.steps["output"]
        if not out["docs_out"]:
            # an empty artifact is never what was wanted, and tokenize would fail on it later
            raise EmptyResult(f"clean-data: no document survived ({stats.steps['read'].get('docs_out', 0)} read from {len(files)} files); "
                              f"per step: {json.dumps(stats.to_dict())}")
        return {"documents": out["docs_out"], "bytes": out["bytes_out"], "shards": [s.name for s in shards], "files_in": len(files)}

    artifact = run_stage(STAGE, "flows.clean_data", config, build, raw_files=files, force=force)
    return str(artifact.path)


if __name__ == "__main__":
    import sys

    from flows.cli import app

    app(["clean-data", *sys.argv[1:]])
