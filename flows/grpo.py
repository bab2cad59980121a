"""The `grpo` flow: a checkpoint (pretrain, sft or grpo artifact, or HF folder) + task → a tuned checkpoint."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from flows.checkpoints import tuning_inputs
from flows.stage import run_stage
from flows.ui import publish_figures
from lm.hf_export import save_as_lmforge_checkpoint
from rl.grpo import GRPOSettings, run_grpo
from rl.report import evaluation_rows, plot_reward_curve, rounded

STAGE = "grpo"


# not log_prints: `datasets` hashes functions through dill, which reads `dis.dis` output from a captured
# stdout; Prefect's print capture would log those ~1,000 lines of bytecode instead
@task(name="grpo-train", log_prints=False)
def grpo_task(model_dir: Path, settings: GRPOSettings, out_dir: Path, work_dir: Path) -> dict:
    """Evaluate, run TRL's GRPOTrainer, evaluate again."""
    return run_grpo(model_dir, settings, out_dir, work_dir)


@flow(name="grpo", log_prints=True)
def grpo(checkpoint: str, settings: GRPOSettings = GRPOSettings(), force: bool = False) -> str:
    """GRPO-tune a checkpoint on a task with verifiable rewards; returns the artifact directory."""
    logger = get_run_logger()
    art, model_dir, settings, raw = tuning_inputs(checkpoint, settings)

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
