"""What a finished pretraining run shows a person: a loss curve, sample generations, and
the checkpoint as a Hugging Face folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from common.plotting import figure
from lm.checkpoint import load_model
from lm.generate import generate
from lm.hf_export import export_hf
from lm.model import TransformerLM
from lm.tokenizer import ENDOFTEXT, Tokenizer
from lm.train import read_metrics


def write_pretrain_report(work_dir: Path, out_dir: Path, tokenizer_dir: Path, config) -> list[dict]:
    """A finished run in `work_dir` → `out_dir`: checkpoint/, metrics.jsonl, loss.png,
    samples.json, hf/. Returns the samples. `config`: the run's PretrainConfig."""
    shutil.copytree(work_dir / "checkpoint", out_dir / "checkpoint")
    shutil.copy(work_dir / "metrics.jsonl", out_dir / "metrics.jsonl")
    plot_loss_curve(
        read_metrics(out_dir / "metrics.jsonl"),
        out_dir / "loss.png",
        f"pretrain {config.model.d_model}d×{config.model.num_layers}L",
    )
    model = load_model(out_dir / "checkpoint")
    samples = sample_generations(
        model, Tokenizer.from_dir(tokenizer_dir), config.sample_prompts, config.sample_max_tokens, config.seed
    )
    (out_dir / "samples.json").write_text(json.dumps(samples, indent=2, ensure_ascii=False))
    export_hf(model, tokenizer_dir, out_dir / "hf")
    return samples


def plot_loss_curve(metrics: list[dict], path: Path, title: str = "pretraining") -> None:
    """Train and validation loss against tokens; beside them, when the run scored lm-eval tasks
    (`eval_tasks`), each bounded task metric (accuracies) against tokens."""
    train = [(m["tokens"], m["train_loss"]) for m in metrics if "train_loss" in m]
    val = [(m["tokens"], m["val_loss"]) for m in metrics if "val_loss" in m]
    tasks = sorted({k for m in metrics for k, v in m.items() if k.startswith("eval/") and 0 <= v <= 1})
    with figure(path, ncols=2 if tasks else 1, figsize=(12, 4.5) if tasks else (7, 4.5)) as (fig, axes):
        ax = axes[0] if tasks else axes
        if train:
            ax.plot(*zip(*train), label="train loss", alpha=0.7)
        if val:
            ax.plot(*zip(*val), "o-", label="validation loss")
        ax.set_xlabel("tokens seen")
        ax.set_ylabel("cross-entropy (nats/token), lower is better")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        if tasks:
            for k in tasks:
                axes[1].plot(*zip(*[(m["tokens"], m[k]) for m in metrics if k in m]), "o-", label=k[len("eval/") :])
            axes[1].set_xlabel("tokens seen")
            axes[1].set_ylabel("score (lm-evaluation-harness), higher is better")
            axes[1].set_ylim(0, 1)
            axes[1].set_title("held-out tasks")
            axes[1].grid(alpha=0.3)
            axes[1].legend(fontsize=8)


def sample_generations(
    model: TransformerLM, tokenizer: Tokenizer, prompts: list[str], max_new_tokens: int, seed: int = 0
) -> list[dict]:
    if not prompts:  # `sample_prompts: []` turns samples off
        return []
    ids = [tokenizer.encode(p) for p in prompts]
    budget = min(max_new_tokens, model.config.context_length - max(map(len, ids)))
    eos = tokenizer.special_ids.get(ENDOFTEXT)
    with torch.no_grad():
        outs = generate(model, ids, budget, temperature=0.8, top_p=0.95, eos_id=eos, seed=seed)
    return [{"prompt": p, "completion": tokenizer.decode([t for t in o if t != eos])} for p, o in zip(prompts, outs)]
