"""GRPO outputs a person reads: the reward curve, and the tuned model in lmforge's format."""

from __future__ import annotations

import json
from pathlib import Path


def plot_reward_curve(metrics_path: Path, out: Path, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line] if metrics_path.exists() else []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if rows:
        ax.plot([r["step"] for r in rows], [r["reward"] for r in rows], label="mean reward of the rollouts")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("reward, higher is better")
    ax.set_title(f"GRPO on {task}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


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
