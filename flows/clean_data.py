"""The `clean-data` flow: raw files → clean, deduplicated Parquet shards + stats.json."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from common.paths import data_root
from filters.config import CleanConfig
from filters.document import Stats
from filters.pipeline import Call, clean_corpus, run_partition
from filters.readers import expand_inputs
from flows.quality_model import resolve_classifier_model
from flows.registry import StageSpec
from flows.runners import RunnerConfig, make_task_runner
from flows.stage import run_stage
from flows.store import ArtifactStore

STAGE = "clean-data"


class EmptyResult(ValueError):
    """Nothing usable came out of the inputs: fail with the per-step counts, publish nothing."""


@task(name="partition", task_run_name="{phase} {index}")
def partition_task(phase: str, index: int, call: Call) -> dict:
    """One partition of one clean-data phase (filter a partition of files, hash a part, group a bucket, ...)."""
    return run_partition(*call)


@flow(name="clean-data", flow_run_name="clean-data {config.inputs[0]}", log_prints=True)
def clean_data(config: CleanConfig, runner: RunnerConfig = RunnerConfig(), force: bool = False) -> str:
    """Clean raw documents into deduplicated Parquet shards; returns the artifact directory."""
    logger = get_run_logger()
    unsupported: list[Path] = []
    files = expand_inputs(config.inputs, unsupported)
    logger.info("clean-data: %d input file%s", len(files), "s" if len(files) != 1 else "")
    key_config, model_inputs, model_files = config, [], []
    if config.classifier is not None:
        # the key names the model by its artifact key or its content (raw_files), never by where
        # this machine keeps it; the library gets the file itself
        model_path, model_artifact = resolve_classifier_model(config.classifier.model, ArtifactStore())
        key_model = f"quality-model/{model_artifact.key}" if model_artifact else model_path.name
        key_config = config.model_copy(update={"classifier": config.classifier.model_copy(update={"model": key_model})})
        config = config.model_copy(
            update={"classifier": config.classifier.model_copy(update={"model": str(model_path)})}
        )
        model_inputs, model_files = ([model_artifact], []) if model_artifact else ([], [model_path])

    def build(out_dir: Path, work_dir: Path) -> dict:
        with make_task_runner(runner) as tr:

            def map_calls(phase: str, calls: list[Call]) -> list[dict]:
                futures = [
                    tr.submit(partition_task, {"phase": phase, "index": i, "call": c}) for i, c in enumerate(calls)
                ]
                return [f.result() for f in futures]

            shards, stats = clean_corpus(files, config, work_dir, out_dir, map_calls)
        if unsupported:
            stats.add("read", files_unsupported=len(unsupported))
        (out_dir / "stats.json").write_text(json.dumps(stats.to_dict(), indent=2))
        rows = stats.table_rows()
        create_table_artifact(key="clean-data-stats", table=rows, description="clean-data: documents in/out per step")
        out = stats.steps["output"]
        if not out["docs_out"]:
            # an empty artifact is never what was wanted, and tokenize would fail on it later
            raise EmptyResult(
                f"clean-data: no document survived ({stats.steps['read'].get('docs_out', 0)} read from "
                f"{len(files)} files); "
                f"per step: {json.dumps(stats.to_dict())}"
            )
        return {
            "documents": out["docs_out"],
            "bytes": out["bytes_out"],
            "shards": [s.name for s in shards],
            "files_in": len(files),
        }

    artifact = run_stage(STAGE, key_config, build, inputs=model_inputs, raw_files=files + model_files, force=force)
    return str(artifact.path)


def _clean_rows(path: Path) -> list[dict]:
    return Stats.from_dict(json.loads((path / "stats.json").read_text())).table_rows()


def _clean_defaults() -> dict:
    return {"config": {"inputs": [str(data_root() / "cc-en-jsonl"), str(data_root() / "web-warc-samples")]}}


SPEC = StageSpec(
    clean_data,
    ("clean_data",),
    _clean_rows,
    "Clean the sample web data (override config.inputs to clean your own).",
    CleanConfig,
    _clean_defaults,
)
