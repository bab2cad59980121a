"""GRPO outputs a person reads: the reward curve, and the tuned model in lmforge's format."""

from __future__ import annotations

import json
from pathlib import Path


def plot_reward_curve(metrics_path: Path, out: Path, task: str) -> None:
    from lm.plotting import figure

    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line] if metrics_path.exists() else []
    with figure(out) as (fig, ax):
        if rows:
            ax.plot([r["step"] for r in rows], [r["reward"] for r in rows], label="mean reward of the rollouts")
            ax.legend()
        ax.set_xlabel("GRPO step")
        ax.set_ylabel("reward, higher is better")
        ax.set_title(f"GRPO on {task}")
        ax.grid(alpha=0.3)


def save_as_lmforge_checkpoint(hf_dir: Path, out: Path) -> bool:
    """Convert the tuned HF folder back to our checkpoint format (Llama MHA models only)."""
    from lm.checkpoint import write_weights
    from lm.hf_export import import_hf

    try:
        model = import_hf(hf_dir)
    except (ValueError, KeyError):
        return False  # not a plain Llama (e.g. GQA): the HF folder is the checkpoint
    write_weights(model, out, {"step": 0, "tokens": 0, "source": str(hf_dir)})
    return True
