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
    flops_per_token: float  # exact training FLOPs per token (lm.accounting)
    flops_per_token_6n: float  # 6 × non-embedding parameters


def shape_for(
    target_non_embedding: float, vocab_size: int, context_length: int, aspect: int = 32, head_dim: int = 32
) -> Shape:
    """(layers, width) closest to the target size, preferring d_model ≈ aspect · layers.

    Per layer a SwiGLU block has ≈ 12·d² weights, so for each depth L the width is
    d ≈ √(N / 12L); both whole-head widths around it are candidates (rounding to one would
    leave 3× gaps in the ladder of tiny models). Among them we take the one closest to the
    target in log size, then in log aspect ratio, and report exact counts.
    """
    import math

    best = None
    for L in range(1, 65):
        d_exact = math.sqrt(target_non_embedding / (12 * L)) / head_dim
        for d in {max(head_dim, math.floor(d_exact) * head_dim), max(head_dim, math.ceil(d_exact) * head_dim)}:
            c = ModelConfig(
                vocab_size=vocab_size, context_length=context_length, d_model=d, num_layers=L, num_heads=d // head_dim
            )
            n = count(c).non_embedding_params
            score = abs(math.log(n / target_non_embedding)) + 0.3 * abs(math.log(d / L / aspect))
            if best is None or score < best[0]:
                best = (score, c)
    assert best is not None
    c = best[1]
    counts = count(c)
    return Shape(
        c.num_layers,
        c.d_model,
        c.num_heads,
        c.d_ff,
        counts.non_embedding_params,
        counts.params,
        counts.flops_per_token,
        counts.flops_per_token_6n,
    )


@dataclass(frozen=True)
class GridPoint:
    compute: float
    shape: Shape
    tokens: int
    steps: int
    skipped: str | None = None  # why the point cannot run, if it cannot
    seed: int = 0  # repeats of a point (adaptive sweeps) differ only in their seed


def grid_table(points: list[GridPoint]) -> list[dict]:
    return [
        {
            "compute": f"{p.compute:.2e}",
            "layers": p.shape.num_layers,
            "d_model": p.shape.d_model,
            "heads": p.shape.num_heads,
            "non_emb_params": f"{p.shape.non_embedding_params:,}",
            "tokens": f"{p.tokens:,}",
            "steps": p.steps,
            "status": p.skipped or "run",
        }
        for p in points
    ]
