"""Checkpoints in one place: the model's weights + config on disk, and the CS336 checkpoint API.

- `write_weights` / `load_model`: a checkpoint directory (`model.safetensors`, with a tied
  LM head stored once; `state.json` with the model config and whatever the caller adds).
  The training loop's full state (lm/train.py: optimizer, RNGs, data position) and GRPO's
  converted model (rl/report.py) both write through `write_weights`.
- `save_checkpoint(model, optimizer, iteration, out)` / `load_checkpoint(src, model, optimizer)`:
  the assignment's single-file API (any module, any optimizer), for notebooks and adapters.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any, BinaryIO

import torch
from safetensors.torch import load_file, save_file

from lm.model import ModelConfig, TransformerLM
from lm.paths import fsync_path


def write_weights(model: TransformerLM, out_dir: Path, state: dict[str, Any]) -> None:
    """`model.safetensors`, then `state.json` ({"model": config, **state}), each fsynced: a
    state.json on disk means the weights are there too (crash recovery relies on it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tied = model.config.tie_embeddings
    save_file(
        {
            k: v.detach().contiguous().cpu()
            for k, v in model.state_dict().items()
            if not (tied and k == "lm_head.weight")
        },
        out_dir / "model.safetensors",
    )
    fsync_path(out_dir / "model.safetensors")
    (out_dir / "state.json").write_text(json.dumps({**state, "model": model.config.to_dict()}, indent=2))
    fsync_path(out_dir / "state.json")


def load_model(checkpoint_dir: Path, device: str = "cpu") -> TransformerLM:
    state = json.loads((checkpoint_dir / "state.json").read_text())
    model = TransformerLM(ModelConfig(**state["model"]))
    model.load_state_dict(load_file(checkpoint_dir / "model.safetensors"), strict=not model.config.tie_embeddings)
    return model.to(device)


def save_checkpoint(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    iteration: int,
    out: str | os.PathLike | BinaryIO | IO[bytes],
) -> None:
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iteration": iteration}, out)


def load_checkpoint(
    src: str | os.PathLike | BinaryIO | IO[bytes], model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> int:
    """Restore model and optimizer in place; returns the iteration that was saved."""
    state = torch.load(src, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["iteration"])
