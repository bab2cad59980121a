"""`SweepConfig`: a grid of compute budgets × model sizes sharing one training recipe."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lm.train import PretrainConfig
from scaling.adaptive import AdaptiveConfig
from scaling.grid import GridPoint, shape_for

# Kaplan et al. 2020, appendix D.1: the learning rate their sweeps found best for N
# non-embedding parameters (Adam, after warmup), LR(N) ≈ 0.003239 − 0.0001395·log N
KAPLAN_LR_INTERCEPT, KAPLAN_LR_SLOPE = 0.003239, 0.0001395


class SweepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    budgets: list[float] = Field(..., min_length=1, description="training compute per run, FLOPs")
    sizes: list[float] = Field(..., min_length=2, description="target non-embedding parameter counts")
    flops: Literal["exact", "6n"] = "exact"  # tokens = C / (exact FLOPs/token) or C / 6N
    aspect: int = Field(32, ge=1, description="d_model ≈ aspect × layers")
    head_dim: int = Field(32, ge=2)
    min_tokens_per_param: float = Field(1.0, ge=0)
    max_tokens_per_param: float | None = Field(
        None,
        gt=0,
        description="skip points with more tokens per parameter: a budget "
        "trains only the sizes near its optimum, not tiny models for many steps",
    )
    max_tokens: int | None = None
    train: PretrainConfig = PretrainConfig(max_steps=1)  # shared recipe: dims and length set per point
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    lr_rule: Literal["constant", "kaplan"] = Field(
        "constant",
        description="constant: train.lr for every size; kaplan: "
        "Kaplan et al. 2020 eq. D.1, lr = 0.003239 − 0.0001395·ln N (min_lr keeps its ratio)",
    )
    concurrency: int = Field(
        2, ge=1, description="grid points trained at once (one per core or GPU)", json_schema_extra={"cache_key": False}
    )
    devices: list[str] | Literal["auto"] | None = Field(
        None,
        description="one device per concurrent point, e.g. [cuda:0, cuda:1]; auto: every visible GPU (concurrency "
        "becomes their number), else the CPU cores split between `concurrency` workers",
        json_schema_extra={"cache_key": False},
    )
    adaptive: AdaptiveConfig = AdaptiveConfig()
    n_bootstrap: int = Field(200, ge=0)
    predict_at: list[float] = [1e15, 1e17, 1e19]

    @model_validator(mode="after")
    def _check(self) -> SweepConfig:
        if len(set(self.budgets)) < 2:
            raise ValueError("an IsoFLOP fit needs at least 2 distinct budgets")
        if isinstance(self.devices, list) and self.concurrency > len(self.devices):
            raise ValueError(f"concurrency {self.concurrency} > {len(self.devices)} devices: one point per device")
        return self

    def with_devices(self) -> SweepConfig:
        """`devices: auto` made explicit for this machine: every visible GPU, one point each."""
        if self.devices != "auto":
            return self
        import torch

        gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        return self.model_copy(update={"devices": gpus or None, "concurrency": len(gpus) or self.concurrency})

    def grid(self, vocab_size: int) -> list[GridPoint]:
        """The sweep's (budget × size) points for a tokenizer of `vocab_size`; two targets that
        round to the same shape in a budget are trained once."""
        points = []
        for c in self.budgets:
            seen: set = set()
            for n in self.sizes:
                p = self.point(vocab_size, c, n)
                if p.shape not in seen:
                    seen.add(p.shape)
                    points.append(p)
        return points

    def point(self, vocab_size: int, compute: float, size: float, window: bool = True) -> GridPoint:
        """The run of budget `compute` with the shape nearest `size` non-embedding parameters:
        tokens D = C / FLOPs-per-token (exact count or 6N), or why it cannot run.

        `window=False` (adaptive additions) drops the tokens-per-parameter window: it is a
        prior on where the optimum lies, and an added run goes where the losses point."""
        shape = shape_for(size, vocab_size, self.train.context_length, self.aspect, self.head_dim)
        per_token = shape.flops_per_token if self.flops == "exact" else shape.flops_per_token_6n
        per_step = self.train.tokens_per_step
        steps = int(compute / per_token) // per_step
        tokens, n = steps * per_step, shape.non_embedding_params
        skipped = None
        if steps < 10:
            skipped = f"{int(compute / per_token):,} tokens is fewer than 10 steps of {per_step:,}"
        elif window and tokens < self.min_tokens_per_param * n:
            skipped = f"{tokens / n:.2f} tokens/param < {self.min_tokens_per_param}"
        elif window and self.max_tokens_per_param is not None and tokens > self.max_tokens_per_param * n:
            skipped = f"{tokens / n:,.0f} tokens/param > {self.max_tokens_per_param:g}"
        elif self.max_tokens is not None and tokens > self.max_tokens:
            skipped = f"{tokens:,} tokens exceeds the cap of {self.max_tokens:,}"
        return GridPoint(compute, shape, tokens, steps, skipped)

    def flops_definition(self) -> str:
        """What a budget's FLOPs count, as fit.json states it."""
        if self.flops == "6n":
            return (
                "6n: C = 6·N·D, N = non-embedding parameters (Kaplan et al.); the grid, the IsoFLOP and "
                "parametric fits, "
                "their predictions and the plots all use it"
            )
        return (
            "exact: C = exact training FLOPs per token (attention and output layer included) × D; the parametric law's "
            "optimal allocation converts C with 6N, so its predictions are approximate for small models"
        )

    def point_lr(self, non_embedding_params: int) -> tuple[float, float]:
        """(lr, min_lr) of a point of this size under `lr_rule`."""
        if self.lr_rule == "constant":
            return self.train.lr, self.train.min_lr
        lr = KAPLAN_LR_INTERCEPT - KAPLAN_LR_SLOPE * math.log(non_embedding_params)
        return lr, lr * self.train.min_lr / self.train.lr

    def point_config(self, point: GridPoint) -> PretrainConfig:
        s = point.shape
        lr, min_lr = self.point_lr(s.non_embedding_params)
        return self.train.model_copy(
            update={
                "lr": lr,
                "min_lr": min_lr,
                "seed": self.train.seed + point.seed,
                "model": dataclasses.replace(
                    self.train.model, d_model=s.d_model, num_layers=s.num_layers, num_heads=s.num_heads, d_ff=None
                ),
                "max_steps": point.steps,
                "max_tokens": None,
                "warmup_steps": max(1, int(self.warmup_fraction * point.steps)),
                "eval_interval": point.steps,
                "checkpoint_interval": max(point.steps // 4, 1),
                "log_interval": max(point.steps // 50, 1),
            }
        )
