"""Reading a table of runs (CSV, JSON or Parquet: a sweep's runs.csv, a W&B export, a paper's
points) into `Runs`, whatever its column names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.fit import FLOPS_PER_PARAM_TOKEN, Runs

ALIASES = {
    "parameters": ("parameters", "params", "n", "model size", "non_embedding_params", "model_size"),
    "tokens": ("tokens", "d", "training tokens", "n_tokens"),
    "compute": ("compute", "c", "flops", "training flop", "compute_budget", "training_flops"),
    "loss": ("loss", "final_loss", "val_loss", "final_val_loss"),
}


def read_table(path: Path) -> pd.DataFrame:
    """A runs table by its suffix: .parquet, .json (a list of rows or {"runs": [...]}), else CSV."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".json":
        rows = json.loads(path.read_text())
        return pd.DataFrame(rows.get("runs", rows) if isinstance(rows, dict) else rows)
    return pd.read_csv(path)


def _column(columns: list[str], name: str) -> str | None:
    lower = {str(k).lower().strip(): k for k in columns}
    return next((lower[alias] for alias in ALIASES[name] if alias in lower), None)


def failed_rows(table: pd.DataFrame) -> pd.Series:
    """Rows of runs that did not finish: an `error` recorded (a sweep's failed point) or no finite loss."""
    loss = _column(list(table.columns), "loss")
    bad = ~np.isfinite(pd.to_numeric(table[loss], errors="coerce")) if loss else pd.Series(False, index=table.index)
    if "error" in table.columns:
        bad |= table["error"].fillna("").astype(str).str.len() > 0
    return bad


def runs_from_table(table: pd.DataFrame, source: str = "runs") -> Runs:
    """Columns: parameters; tokens or compute (the other derived with C = 6ND); loss. Failed
    rows (`failed_rows`) are left out; the caller counts them."""
    cols = {name: _column(list(table.columns), name) for name in ALIASES}
    if cols["parameters"] is None or cols["loss"] is None or (cols["tokens"] is None and cols["compute"] is None):
        raise ValueError(f"{source}: need columns parameters, loss and tokens or compute; found {list(table.columns)}")
    table = table[~failed_rows(table)]
    if table.empty:
        raise ValueError(f"{source}: no finished runs")
    N = table[cols["parameters"]].to_numpy(float)
    L = table[cols["loss"]].to_numpy(float)
    D = table[cols["tokens"]].to_numpy(float) if cols["tokens"] else None
    C = table[cols["compute"]].to_numpy(float) if cols["compute"] else None
    if D is None:
        D = C / (FLOPS_PER_PARAM_TOKEN * N)
    if C is None:
        C = FLOPS_PER_PARAM_TOKEN * N * D
    return Runs(N, D, C, L)


def load_runs(path: Path, drop_highest_loss: int = 0) -> Runs:
    table = read_table(path)
    if table.empty:
        raise ValueError(f"{path}: no runs")
    runs = runs_from_table(table, str(path))
    if drop_highest_loss:
        runs = runs.take(np.argsort(runs.L)[: len(runs) - drop_highest_loss])
    return runs
