"""The `evaluate` flow: one or more checkpoints × a task → eval.json, a table, a comparison plot.

An lmforge task is scored by `rl.evaluate` (greedy accuracy, pass@k, every reward); an
lm-evaluation-harness reference (a task file, a folder, a task/group/tag name, a suite) is scored
by the harness itself (`lm.harness`), so its metrics equal `lm_eval`'s on the same model and data.
Cached by the checkpoints' keys (or their files, for Hugging Face folders), the task's files and
data, and the settings: the same comparison twice is a cache hit, and a new checkpoint is a new
artifact that can be read beside the old ones.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from flows.checkpoints import resolve_checkpoint
from flows.registry import StageSpec
from flows.stage import run_stage
from flows.store import manifest_summary
from lm import harness
from rl.evaluate import EvalConfig, compare_checkpoints, evaluate_model_dir
from rl.generation import resolve_engine
from rl.report import comparison_rows, harness_rows, plot_checkpoint_comparison, plot_harness_comparison

STAGE = "evaluate"


# not log_prints: `datasets` hashes functions through dill, which reads `dis.dis` output from a captured
# stdout; Prefect's print capture would log those ~1,000 lines of bytecode instead
@task(name="evaluate-checkpoint", log_prints=False)
def evaluate_task(model_dir: Path, settings: EvalConfig) -> dict:
    loaded = settings.load_task()
    if isinstance(loaded, harness.HarnessTasks):
        return harness.evaluate_model_dir(
            model_dir,
            loaded,
            engine=settings.engine,
            batch_size=settings.batch_size,
            limit=settings.limit,
            num_fewshot=settings.num_fewshot,
            apply_chat_template=settings.apply_chat_template,
        )
    return evaluate_model_dir(
        model_dir, loaded, settings.split, settings.limit, settings.seed, settings.engine, settings.samples
    )


def engine_that_runs(settings: EvalConfig) -> str:
    """The engine that will run, so that `auto` never enters the key: the harness's backend for its tasks."""
    if isinstance(settings.load_task(), harness.HarnessTasks):
        return "vllm" if harness.harness_backend(settings.engine) == "vllm" else "transformers"
    return resolve_engine(settings.engine)


@flow(name="evaluate", log_prints=True)
def evaluate(checkpoints: list[str], settings: EvalConfig = EvalConfig(), force: bool = False) -> str:
    """Evaluate every checkpoint on the task (lmforge's: greedy accuracy, pass@k, rewards, lengths; lm-eval's:
    the harness's metrics); returns the artifact directory."""
    logger = get_run_logger()
    if not checkpoints:
        raise ValueError("evaluate needs at least one --checkpoint")
    resolved = [resolve_checkpoint(c) for c in checkpoints]
    settings = settings.model_copy(update={"engine": engine_that_runs(settings)})
    loaded = settings.load_task()
    on_harness = isinstance(loaded, harness.HarnessTasks)
    inputs = [art for art, _ in resolved if art is not None]
    raw = [p for art, d in resolved if art is None for p in sorted(d.iterdir()) if p.is_file()] + loaded.files()
    task_name = loaded.name

    def build(out_dir: Path, work_dir: Path) -> dict:
        results = []
        for art, model_dir in resolved:
            name = f"{art.stage}/{art.key}" if art else str(model_dir)
            results.append({"name": name, **evaluate_task(model_dir, settings)})
            if on_harness:
                for row in harness.metric_rows(results[-1]):
                    logger.info("%s: %s %s (%s) %s", name, row["task"], row["metric"], row["filter"], row["value"])
            else:
                greedy = results[-1]["greedy"]
                logger.info(
                    "%s: greedy accuracy %.3f, mean reward %.3f", name, greedy["accuracy"], greedy["mean_reward"]
                )
        header = {"task": task_name, "engine": settings.engine}
        if on_harness:
            import lm_eval

            rows = harness_rows(results)
            header |= {"harness": f"lm_eval {lm_eval.__version__}", "specs": [str(s) for s in loaded.specs]}
            plot_harness_comparison(results, out_dir / "comparison.png", f"{task_name}: checkpoints compared")
        else:
            rows = comparison_rows(results)
            header |= {"split": settings.split, "comparisons": compare_checkpoints(results)}
            for c in header["comparisons"]:
                lo, hi = c["ci95"]
                (logger.warning if c["within_noise"] else logger.info)(
                    "%s → %s: %s accuracy %+.3f (95%% interval %+.3f … %+.3f over %d rows)%s",
                    c["from"],
                    c["to"],
                    c["mode"],
                    c["difference"],
                    lo,
                    hi,
                    c["n"],
                    ": within noise, more held-out rows would tell" if c["within_noise"] else "",
                )
            plot_checkpoint_comparison(results, out_dir / "comparison.png", task_name)
        (out_dir / "eval.json").write_text(json.dumps({**header, "checkpoints": results}, indent=2))
        create_table_artifact(key="evaluate", table=rows, description=f"{task_name}: checkpoints compared")
        return {"task": task_name, "rows": rows}

    artifact = run_stage(STAGE, settings, build, inputs=inputs, raw_files=raw, force=force)
    return str(artifact.path)


def _evaluate_headline(path: Path) -> list[str]:
    summary = manifest_summary(path)
    if summary["rows"] and "metric" in summary["rows"][0]:  # lm-eval's metrics, one row each
        lines = [
            f"{row['checkpoint']}: {row['task']} {row['metric']}"
            + ("" if row["filter"] == "none" else f" ({row['filter']})")
            + f" {row['value']}"
            for row in summary["rows"]
        ]
        return lines + [f"plot: {path / 'comparison.png'}"]
    return [
        f"{summary['task']}: "
        + ", ".join(
            f"{k} {v}" for k, v in row.items() if k in ("checkpoint", "greedy accuracy") or k.startswith("pass@")
        )
        for row in summary["rows"]
    ] + [f"plot: {path / 'comparison.png'}"]


SPEC = StageSpec(
    evaluate,
    ("post_training.evaluate", "evaluate"),
    lambda path: [{k: str(v) for k, v in row.items()} for row in manifest_summary(path)["rows"]],
    "Evaluate checkpoints on a task: --param checkpoints='[KEY, ...]'.",
    EvalConfig,
    headline=_evaluate_headline,
)
