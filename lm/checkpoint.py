"""Checkpoints in one place: the model's weights + config on disk, and the CS336 checkpoint API.

- `write_weights` / `load_model`: a checkpoint directory (`model.safetensors`, with a tied
  LM head stored once; `state.json` with the model config and whatever the caller adds).
  The training loop's full state (`save_training_state` / `restore_training_state`:
  weights, optimizer, RNGs, data position; a crash-safe swap, `recover_checkpoint`) and
  GRPO's converted model (rl/report.py) both write through `write_weights`.
- `save_checkpoint(model, optimizer, iteration, out)` / `load_checkpoint(src, model, optimizer)`:
  the assignment's single-file API (any module, any optimizer), for notebooks and adapters.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
import torch
from pydantic import BaseModel
from safetensors.torch import load_file, save_file

from common.paths import fsync_path
from lm.model import ModelConfig, TransformerLM

log = logging.getLogger("lmforge.lm.checkpoint")


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


# --- the training loop's full state ---------------------------------------------------------------
def save_training_state(
    path: Path,
    model: TransformerLM,
    optimizer: torch.optim.Optimizer,
    step: int,
    tokens: int,
    data_rng: np.random.Generator,
    config: BaseModel,
) -> None:
    """Write `<path>.tmp` (state.json last, all fsynced), then swap it in by two renames.

    A kill at any instant leaves a whole checkpoint findable by `recover_checkpoint`:
    before the first rename `path` is intact; between the renames `.tmp` is complete
    (its state.json exists) and `.old` holds the previous one.
    """
    recover_checkpoint(path)  # never overwrite .tmp while it is the only whole copy
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(
        {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "data": data_rng.bit_generator.state,
        },
        tmp / "rng.pt",
    )
    for f in tmp.iterdir():
        fsync_path(f)
    train = config.model_dump(mode="json")
    if isinstance(train.get("model"), dict):  # the settings leave the vocabulary to the tokenizer: record the real one
        train["model"]["vocab_size"] = model.config.vocab_size
    write_weights(model, tmp, {"step": step, "tokens": tokens, "train": train})  # state.json last
    fsync_path(tmp)
    old = path.with_name(path.name + ".old")
    if path.exists():
        os.rename(path, old)
    os.rename(tmp, path)
    fsync_path(path.parent)
    shutil.rmtree(old, ignore_errors=True)


def recover_checkpoint(path: Path) -> None:
    """Finish a swap that a kill interrupted: `path` missing means the newest whole copy is
    `.tmp` (if its state.json was written) or else `.old`."""
    if (path / "state.json").is_file():
        return
    for candidate in (path.with_name(path.name + ".tmp"), path.with_name(path.name + ".old")):
        if (candidate / "state.json").is_file():
            shutil.rmtree(path, ignore_errors=True)
            os.rename(candidate, path)
            log.warning("checkpoint swap was interrupted: recovered %s from %s", path, candidate.name)
            return


def restore_training_state(
    path: Path, model: TransformerLM, optimizer: torch.optim.Optimizer, data_rng: np.random.Generator, device: str
) -> tuple[int, int]:
    model.load_state_dict(
        load_file(path / "model.safetensors", device=str(device)), strict=not model.config.tie_embeddings
    )
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=device, weights_only=False))
    rng = torch.load(path / "rng.pt", weights_only=False)
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    data_rng.bit_generator.state = rng["data"]
    state = json.loads((path / "state.json").read_text())
    return state["step"], state["tokens"]  # (step, tokens seen) to resume from
