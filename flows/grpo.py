"""The `grpo` flow: a checkpoint (pretrain, sft or grpo artifact, or HF folder) + task → a tuned checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from flows.checkpoints import tuning_inputs
from flows.registry import StageSpec
from flows.stage import run_stage
from flows.ui import publish_figures
from lm.hf_export import save_as_lmforge_checkpoint
from rl.grpo import GRPOSettings, run_grpo
from rl.report import as_text, evaluation_rows, plot_reward_curve, rounded

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


def _lift_text(lift: dict | None) -> str:
    """` (+0.050, 95% interval -0.030 … +0.130: within noise)`, or nothing for an older artifact."""
    if not lift:
        return ""
    lo, hi = lift["ci95"]
    noise = ": within noise" if lift["within_noise"] else ""
    return f" ({lift['difference']:+.3f}, 95% interval {lo:+.3f} … {hi:+.3f}{noise})"


def _grpo_headline(path: Path) -> list[str]:
    g = json.loads((path / "eval.json").read_text())
    before, after = g["before"], g["after"]
    lines = [
        f"{g['task']}, {mode}, rollouts by {g['engine']}: held-out accuracy {before[mode]['accuracy']:.3f} → "
        f"{after[mode]['accuracy']:.3f}{_lift_text(g.get('lift', {}).get(mode))}, mean reward "
        f"{before[mode]['mean_reward']:.3f} → {after[mode]['mean_reward']:.3f}"
        for mode in ("greedy", "sampled")
    ]
    widest = max((k for k in after["sampled"] if k.startswith("pass@")), key=lambda k: int(k[5:]), default=None)
    if widest:
        lines.append(f"{widest}: {before['sampled'][widest]:.3f} → {after['sampled'][widest]:.3f}")
    lines += _grpo_training_lines(path / "metrics.jsonl")
    return lines + ([f"WARNING: {g['warning']}"] if "warning" in g else [])


def _grpo_training_lines(metrics: Path) -> list[str]:
    """Why the lift is what it is: the training reward's trend, the share of groups that taught
    nothing (every completion scored the same: no advantage), and the KL to the reference."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.is_file() else []
    rows = [r for r in rows if "reward" in r]
    if not rows:
        return []
    k = max(1, len(rows) // 10)

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    start, end = mean([r["reward"] for r in rows[:k]]), mean([r["reward"] for r in rows[-k:]])
    no_signal = mean([r.get("frac_reward_zero_std", 0.0) for r in rows])
    kl = f", KL to the reference {rows[-1]['kl']:.4f} at the end" if "kl" in rows[-1] else ""
    return [
        f"training: reward {start:.3f} → {end:.3f} (mean of the first / last {k} logged steps); "
        f"{no_signal:.0%} of groups had no reward variance (no learning signal){kl}"
    ]


# a pipeline file's `grpo:` section holds the settings under `settings:`
SPEC = StageSpec(
    grpo,
    ("post_training.grpo", "grpo.settings", "grpo"),
    lambda path: evaluation_rows(json.loads((path / "eval.json").read_text()), ("before", "after"), as_text),
    "GRPO on a checkpoint: --param checkpoint=KEY_OR_HF_DIR.",
    GRPOSettings,
    headline=_grpo_headline,
)
