"""What a finished pretraining run shows a person: a loss curve and sample generations."""

from __future__ import annotations

from pathlib import Path

import torch

from lm.generate import generate
from lm.model import TransformerLM
from lm.tokenizer import ENDOFTEXT, Tokenizer


def plot_loss_curve(metrics: list[dict], path: Path, title: str = "pretraining") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    train = [(m["tokens"], m["train_loss"]) for m in metrics if "train_loss" in m]
    val = [(m["tokens"], m["val_loss"]) for m in metrics if "val_loss" in m]
    if train:
        ax.plot(*zip(*train), label="train loss", alpha=0.7)
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss")
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("cross-entropy (nats/token), lower is better")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def sample_generations(model: TransformerLM, tokenizer: Tokenizer, prompts: list[str], max_new_tokens: int, seed: int = 0) -> list[dict]:
    ids = [tokenizer.encode(p) for p in prompts]
    budget = min(max_new_tokens, model.config.context_length - max(map(len, ids)))
    eos = tokenizer.special_ids.get(ENDOFTEXT)
    with torch.no_grad():
        outs = generate(model, ids, budget, temperature=0.8, top_p=0.95, eos_id=eos, seed=seed)
    return [{"prompt": p, "completion": tokenizer.decode([t for t in o if t != eos])} for p, o in zip(prompts, outs)]
