"""The `grpo` flow: a checkpoint (pretrain, sft or grpo artifact, or HF folder) + task → a tuned checkpoint."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from flows.checkpoints import resolve_checkpoint
from flows.stage import run_stage
from flows.ui import publish_figures
from rl.generation import resolve_engine
from rl.grpo import GRPOConfig, run_grpo
from rl.report import evaluation_rows, plot_reward_curve, rounded, save_as_lmforge_checkpoint

STAGE = "grpo"


# not log_prints: `datasets` hashes functions through dill, which reads `dis.dis` output from a captured
# stdout; Prefect's print capture would log those ~1,000 lines of bytecode instead
@task(name="grpo-train", log_prints=False)
def grpo_task(model_dir: Path, settings: GRPOConfig, out_dir: Path, work_dir: Path) -> dict:
    """Evaluate, run TRL's GRPOTrainer, evaluate again."""
    return run_grpo(model_dir, settings, out_dir, work_dir)


@flow(name="grpo", log_prints=True)
def grpo(checkpoint: str, settings: GRPOConfig = GRPOConfig(), force: bool = False) -> str:
    """GRPO-tune a checkpoint on a task with verifiable rewards; returns the artifact directory."""
    logger = get_run_logger()
    art, model_dir = resolve_checkpoint(checkpoint)
    settings = settings.model_copy(update={"engine": resolve_engine(settings.engine)})  # `auto` never enters the key
    # the task's file, data and python rewards' source enter the key by content
    raw = ([] if art else sorted(p for p in model_dir.iterdir() if p.is_file())) + settings.load_task().files()

    def build(out_dir: Path, work_dir: Path) -> dict:
        result = grpo_task(model_dir, settings, out_dir, work_dir)
        plot_reward_curve(out_dir / "metrics.jsonl", out_dir / "reward.png", settings.load_task().name)
        save_as_lmforge_checkpoint(out_dir / "hf", out_dir / "checkpoint")
        rows = evaluation_rows(result, ("before", "after"), rounded)
        create_table_artifact(
            key="grpo-eval",
            table=rows,
            description=f"grpo on {settings.load_task().name}: held-out evaluation before/after",
        )
        publish_figures(
            "grpo-reward", f"grpo on {settings.load_task().name}: reward per step", "", [out_dir / "reward.png"]
        )
        if "warning" in result:
            logger.warning("%s", result["warning"])
        for r in rows:
            logger.info("%s: accuracy %.3f, mean reward %.3f", r["eval"], r["accuracy"], r["mean_reward"])
        return result

    artifact = run_stage(STAGE, settings, build, inputs=[art] if art else [], raw_files=raw, force=force)
    return str(artifact.path)
