"""Reading a table of runs (CSV or JSON) into `Runs`, whatever its column names."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from scaling.fit import FLOPS_PER_PARAM_TOKEN, Runs

ALIASES = {
    "parameters": ("parameters", "params", "n", "model size", "non_embedding_params", "model_size"),
    "tokens": ("tokens", "d", "training tokens", "n_tokens"),
    "compute": ("compute", "c", "flops", "training flop", "compute_budget", "training_flops"),
    "loss": ("loss", "final_loss", "val_loss", "final_val_loss"),
}


def _column(row_keys: list[str], name: str) -> str | None:
    lower = {k.lower().strip(): k for k in row_keys}
    for alias in ALIASES[name]:
        if alias in lower:
            return lower[alias]
    return None


def load_runs(path: Path, drop_highest_loss: int = 0) -> Runs:
    """Columns: parameters; tokens or compute (the other derived with C = 6ND); loss."""
    path = Path(path)
    if path.suffix == ".json":
        rows = json.loads(path.read_text())
        rows = rows.get("runs", rows) if isinstance(rows, dict) else rows
    else:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no runs")
    keys = list(rows[0])
    cols = {name: _column(keys, name) for name in ALIASES}
    if cols["parameters"] is None or cols["loss"] is None or (cols["tokens"] is None and cols["compute"] is None):
        raise ValueError(f"{path}: need columns parameters, loss and tokens or compute; found {keys}")
    N = np.array([float(r[cols["parameters"]]) for r in rows])
    L = np.array([float(r[cols["loss"]]) for r in rows])
    D = np.array([float(r[cols["tokens"]]) for r in rows]) if cols["tokens"] else None
    C = np.array([float(r[cols["compute"]]) for r in rows]) if cols["compute"] else None
    if D is None:
        D = C / (FLOPS_PER_PARAM_TOKEN * N)
    if C is None:
        C = FLOPS_PER_PARAM_TOKEN * N * D
    runs = Runs(N, D, C, L)
    if drop_highest_loss:
        runs = runs.take(np.argsort(L)[: len(L) - drop_highest_loss])
    return runs
