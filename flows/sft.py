"""The `sft` flow: a checkpoint (pretrain, sft or grpo artifact, or HF folder) + task → a fine-tuned checkpoint."""

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
from rl.report import as_text, evaluation_rows, plot_metric_curve, rounded
from rl.sft import SFTSettings, run_sft

STAGE = "sft"


# not log_prints: `datasets` hashes functions through dill, which reads `dis.dis` output from a captured
# stdout; Prefect's print capture would log those ~1,000 lines of bytecode instead
@task(name="sft-train", log_prints=False)
def sft_task(model_dir: Path, settings: SFTSettings, out_dir: Path, work_dir: Path) -> dict:
    """Run TRL's SFTTrainer, then evaluate held-out loss and accuracy."""
    return run_sft(model_dir, settings, out_dir, work_dir)


@flow(name="sft", log_prints=True)
def sft(checkpoint: str, settings: SFTSettings = SFTSettings(), force: bool = False) -> str:
    """Supervised fine-tuning of a checkpoint on a task's train split; returns the artifact directory."""
    logger = get_run_logger()
    art, model_dir, settings, raw = tuning_inputs(checkpoint, settings)

    def build(out_dir: Path, work_dir: Path) -> dict:
        result = sft_task(model_dir, settings, out_dir, work_dir)
        plot_metric_curve(
            out_dir / "metrics.jsonl",
            out_dir / "loss.png",
            "loss",
            "training loss (completion tokens), lower is better",
            f"SFT on {settings.load_task().name}",
        )
        save_as_lmforge_checkpoint(out_dir / "hf", out_dir / "checkpoint")
        rows = evaluation_rows(result, ("after",), rounded)
        create_table_artifact(
            key="sft-eval", table=rows, description=f"sft on {settings.load_task().name}: held-out evaluation"
        )
        publish_figures("sft-loss", f"sft on {settings.load_task().name}: training loss", "", [out_dir / "loss.png"])
        logger.info(
            "held-out loss %.4f; greedy accuracy %.3f", result["heldout_loss"], result["after"]["greedy"]["accuracy"]
        )
        return {k: v for k, v in result.items() if k != "after"} | {
            "greedy_accuracy": result["after"]["greedy"]["accuracy"]
        }

    artifact = run_stage(STAGE, settings, build, inputs=[art] if art else [], raw_files=raw, force=force)
    return str(artifact.path)


def _sft_headline(path: Path) -> list[str]:
    e = json.loads((path / "eval.json").read_text())
    g, smp = e["after"]["greedy"], e["after"]["sampled"]
    passes = ", ".join(f"{k} {v:.3f}" for k, v in smp.items() if k.startswith("pass@"))
    return [
        f"{e['task']}: held-out loss {e['heldout_loss']:.3f}, greedy accuracy {g['accuracy']:.3f}"
        + (f", {passes}" if passes else "")
    ]


SPEC = StageSpec(
    sft,
    ("post_training.sft", "sft"),
    lambda path: evaluation_rows(json.loads((path / "eval.json").read_text()), ("after",), as_text),
    "Supervised fine-tuning on a task: --param checkpoint=KEY_OR_HF_DIR.",
    SFTSettings,
    headline=_sft_headline,
)
