"""Sweep grids: model shapes for target sizes, and (budget × size) points with their tokens.

Counts come from `lm.accounting`, so the grid and the trained models never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from lm.accounting import count
from lm.model import ModelConfig


@dataclass(frozen=True)
class Shape:
    num_layers: int
    d_model: int
    num_heads: int
    d_ff: int
    non_embedding_params: int
    params: int


def shape_for(target_non_embedding: float, vocab_size: int, context_length: int, aspect: int = 32, head_dim: int = 32) -> Shape:
    """(layers, width) closest to the target size, preferring d_model ≈ aspect · layers.

    Per layer a SwiGLU block has ≈ 12·d² weights, so for each depth L the width is
    d ≈ √(N / 12L), rounded to whole heads of `head_dim`; among depths we take the one
    closest to the target in log size, then in log aspect ratio, and report exact counts.
    """
    import math

    best = None
    for L in range(1, 65):
        d = max(head_dim, round(math.sqrt(target_non_embedding / (12 * L)) / head_dim) * head_dim)
        c = ModelConfig(vocab_size=vocab_size, context_length=context_length, d_model=d, num_layers=L, num_heads=d // head_dim)
        n = count(c).non_embedding_params
        score = abs(math.log(n / target_non_embedding)) + 0.3 * abs(math.log(d / L / aspect))
        if best is None or score < best[0]:
            best = (score, c)
    assert best is not None
    c = best[1]
    counts = count(c)
    return Shape(c.num_layers, c.d_model, c.num_heads, c.d_ff, counts.non_embedding_params, counts.params)


@dataclass(frozen=True)
class GridPoint:
    compute: float
    shape: Shape
    tokens: int
    steps: int
    skipped: str | None = None  # why the point cannot run, if it cannot
    seed: int = 0  # repeats of a point (adaptive sweeps) differ only in their seed


def build_grid(budgets: list[float], sizes: list[float], vocab_size: int, context_length: int, tokens_per_step: int,
               flops: str = "exact", min_tokens_per_param: float = 1.0, max_tokens: int | None = None,
               aspect: int = 32, head_dim: int = 32) -> list[GridPoint]:
    """Every (budget, size): tokens D = C / FLOPs-per-token (exact count or 6N)."""
    points = []
    for c in budgets:
        seen: set[tuple[int, int]] = set()
        for n in sizes:
            shape = shape_for(n, vocab_size, context_length, aspect, head_dim)
            if (shape.num_layers, shape.d_model) in seen:
                continue  # two targets rounded to the same shape: train it once
            seen.add((shape.num_layers, shape.d_model))
            cfg = ModelConfig(vocab_size=vocab_size, context_length=context_length, d_model=shape.d_model, num_layers=shape.num_layers,
                              num_heads=shape.num_heads)
            counts = count(cfg)
            per_token = counts.flops_per_token if flops == "exact" else counts.flops_per_token_6n
            tokens = int(c / per_token)
            steps = tokens // tokens_per_step
            skipped = None
            if steps < 10:
                skipped = f"{tokens:,} tokens is fewer than 10 steps of {tokens_per_step:,}"
            elif tokens < min_tokens_per_param * shape.non_embedding_params:
                skipped = f"{tokens / shape.non_embedding_params:.2f} tokens/param < {min_tokens_per_param}"
            elif max_tokens is not None and tokens > max_tokens:
                skipped = f"{tokens:,} tokens exceeds the cap of {max_tokens:,}"
            points.append(GridPoint(c, shape, steps * tokens_per_step, steps, skipped))
    return points


def grid_table(points: list[GridPoint]) -> list[dict]:
    return [{"compute": f"{p.compute:.2e}", "layers": p.shape.num_layers, "d_model": p.shape.d_model, "heads": p.shape.num_heads,
             "non_emb_params": f"{p.shape.non_embedding_params:,}", "tokens": f"{p.tokens:,}", "steps": p.steps,
             "status": p.skipped or "run"} for p in points]
