"""`SweepConfig`: a grid of compute budgets × model sizes sharing one training recipe."""

from __future__ import annotations

import dataclasses
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lm.train import PretrainConfig
from scaling.adaptive import AdaptiveConfig
from scaling.grid import GridPoint, build_grid


class SweepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    budgets: list[float] = Field(..., min_length=1, description="training compute per run, FLOPs")
    sizes: list[float] = Field(..., min_length=2, description="target non-embedding parameter counts")
    flops: Literal["exact", "6n"] = "exact"  # tokens = C / (exact FLOPs/token) or C / 6N
    aspect: int = Field(32, ge=1, description="d_model ≈ aspect × layers")
    head_dim: int = Field(32, ge=2)
    min_tokens_per_param: float = Field(1.0, ge=0)
    max_tokens: int | None = None
    train: PretrainConfig = PretrainConfig(max_steps=1)  # shared recipe: dims and length set per point
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    concurrency: int = Field(2, ge=1, description="grid points trained at once (one per core or GPU)", json_schema_extra={"cache_key": False})
    adaptive: AdaptiveConfig = AdaptiveConfig()
    n_bootstrap: int = Field(200, ge=0)
    predict_at: list[float] = [1e15, 1e17, 1e19]

    @model_validator(mode="after")
    def _check(self) -> SweepConfig:
        if len(set(self.budgets)) < 2:
            raise ValueError("an IsoFLOP fit needs at least 2 distinct budgets")
        return self

    def grid(self, vocab_size: int) -> list[GridPoint]:
        """The sweep's (budget × size) points for a tokenizer of `vocab_size`."""
        return build_grid(self.budgets, self.sizes, vocab_size, self.train.context_length, self.train.tokens_per_step, self.flops,
                          self.min_tokens_per_param, self.max_tokens, self.aspect, self.head_dim)

    def point(self, vocab_size: int, compute: float, size: float) -> GridPoint:
        """One point of this sweep's recipe (an adaptive round's addition)."""
        [p] = build_grid([compute], [size], vocab_size, self.train.context_length, self.train.tokens_per_step, self.flops,
                         self.min_tokens_per_param, self.max_tokens, self.aspect, self.head_dim)
        return p

    def point_config(self, point: GridPoint) -> PretrainConfig:
        s = point.shape
        return self.train.model_copy(update={
            "seed": self.train.seed + point.seed,
            "model": dataclasses.replace(self.train.model, d_model=s.d_model, num_layers=s.num_layers, num_heads=s.num_heads, d_ff=None),
            "max_steps": point.steps, "max_tokens": None, "warmup_steps": max(1, int(self.warmup_fraction * point.steps)),
            "eval_interval": point.steps, "checkpoint_interval": max(point.steps // 4, 1), "log_interval": max(point.steps // 50, 1),
        })
