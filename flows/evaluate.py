"""The `evaluate` flow: one or more checkpoints × a task → eval.json, a table, a comparison plot.

Cached by the checkpoints' keys (or their files, for Hugging Face folders), the task's
content and the settings: the same comparison twice is a cache hit, and a new checkpoint
is a new artifact that can be read beside the old ones.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from flows.checkpoints import resolve_checkpoint
from flows.stage import run_stage
from rl.evaluate import EvalConfig, evaluate_model_dir
from rl.generation import resolve_engine
from rl.report import comparison_rows, plot_checkpoint_comparison

STAGE = "evaluate"


@task(name="evaluate-checkpoint")
def evaluate_task(model_dir: Path, settings: EvalConfig) -> dict:
    return evaluate_model_dir(
        model_dir,
        settings.load_task(),
        settings.split,
        settings.limit,
        settings.seed,
        settings.engine,
        settings.samples,
    )


@flow(name="evaluate", log_prints=True)
def evaluate(checkpoints: list[str], settings: EvalConfig = EvalConfig(), force: bool = False) -> str:
    """Evaluate every checkpoint on the task's split (greedy accuracy, pass@k, rewards, lengths);
    returns the artifact directory."""
    logger = get_run_logger()
    if not checkpoints:
        raise ValueError("evaluate needs at least one --checkpoint")
    resolved = [resolve_checkpoint(c) for c in checkpoints]
    settings = settings.model_copy(update={"engine": resolve_engine(settings.engine)})  # `auto` never enters the key
    inputs = [art for art, _ in resolved if art is not None]
    raw = [
        p for art, d in resolved if art is None for p in sorted(d.iterdir()) if p.is_file()
    ] + settings.load_task().files()
    task_name = settings.load_task().name

    def build(out_dir: Path, work_dir: Path) -> dict:
        results = []
        for art, model_dir in resolved:
            name = f"{art.stage}/{art.key}" if art else str(model_dir)
            results.append({"name": name, **evaluate_task(model_dir, settings)})
            logger.info(
                "%s: greedy accuracy %.3f, mean reward %.3f",
                name,
                results[-1]["greedy"]["accuracy"],
                results[-1]["greedy"]["mean_reward"],
            )
        rows = comparison_rows(results)
        (out_dir / "eval.json").write_text(
            json.dumps(
                {"task": task_name, "split": settings.split, "engine": settings.engine, "checkpoints": results},
                indent=2,
            )
        )
        plot_checkpoint_comparison(results, out_dir / "comparison.png", task_name)
        create_table_artifact(
            key="evaluate", table=rows, description=f"{task_name} ({settings.split}): checkpoints compared"
        )
        return {"task": task_name, "rows": rows}

    artifact = run_stage(STAGE, settings, build, inputs=inputs, raw_files=raw, force=force)
    return str(artifact.path)
