"""Adaptive sweeps: after a round of runs, add the runs that the IsoFLOP fit is missing.

Rules, per budget, applied after every round (at most `max_rounds` extra rounds):
1. **Unbracketed minimum** (lowest loss at the grid's smallest or largest size): add the
   next size beyond that edge, one grid step (`step`×) further (more steps, up to
   `MAX_EDGE_STEPS`, when a step rounds to a shape already run), so the curve gets a run
   on the other side of its best size.
2. **No usable parabola** (bracketed, but no convex parabola with its vertex inside the
   sampled sizes fits the losses: the curve is too flat for its noise): repeat the three
   sizes nearest the lowest loss with a new seed, so the fit averages the noise and the
   diagnostics can measure it.
A point the budget cannot train (too few steps or tokens per parameter, over the token
cap) is reported and not added. Rules read only the runs' (N, D, C, L), so the decisions
are reproducible and every added run is an ordinary cached `pretrain` sub-flow.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scaling.diagnostics import budget_diagnostics
from scaling.fit import Runs
from scaling.grid import GridPoint

MAX_EDGE_STEPS = 4  # how far past the edge an added size may go looking for a new shape

RULES = (
    "unbracketed minimum → one more size beyond the edge (× step)",
    "no convex parabola inside the grid → the 3 sizes nearest the minimum again with a new seed",
)


class AdaptiveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_rounds: int = Field(2, ge=0, description="rounds of added runs after the grid")
    step: float | None = Field(None, gt=1, description="size ratio of an added size; None: the grid's median ratio")


def runs_of(rows: list[dict]) -> Runs:
    """The sweep's result rows (runs.csv) as a Runs table on the nominal budgets."""
    return Runs(
        np.array([float(r["parameters"]) for r in rows]),
        np.array([float(r["tokens"]) for r in rows]),
        np.array([float(r["compute"]) for r in rows]),
        np.array([float(r["loss"]) for r in rows]),
    )


def grid_step(sizes: list[float]) -> float:
    ratios = np.diff(np.log(sorted(sizes)))
    return float(np.exp(np.median(ratios))) if len(ratios) else 2.0


def next_points(
    rows: list[dict], done: list[GridPoint], make_point, cfg: AdaptiveConfig, sizes: list[float]
) -> tuple[list[GridPoint], list[str]]:
    """The runs the next round adds, and a line per decision.

    `rows[i]` is the result of `done[i]`; `make_point(compute, size)` builds (or refuses,
    with `skipped`) a grid point of that budget and target non-embedding size."""
    step = cfg.step or grid_step(sizes)
    tried = {(p.compute, p.shape) for p in done}  # a failed point is not retried (it would fail again)...
    finished = [(p, r) for p, r in zip(done, rows) if not r.get("error")]  # ...and is no evidence
    done, rows = [p for p, _ in finished], [r for _, r in finished]
    new: list[GridPoint] = []
    notes: list[str] = []
    runs = runs_of(rows)
    for b in budget_diagnostics(runs):
        c = b["compute"]
        mine = [(p, r) for p, r in zip(done, rows) if p.compute == c]
        targets = sorted({p.shape.non_embedding_params for p, _ in mine})
        if not b["interior"]:
            size, factor = (targets[-1], step) if b["edge"] == "largest" else (targets[0], 1 / step)
            for _ in range(MAX_EDGE_STEPS):  # tiny models' shapes are coarse: step on until the shape is new
                size *= factor
                point = make_point(c, size)
                if point.skipped or (c, point.shape) not in tried:
                    break
            if point.skipped:
                notes.append(
                    f"C = {c:.3g}: minimum at the {b['edge']} size, but a size of {size:,.0f} cannot run "
                    f"({point.skipped})"
                )
            elif (c, point.shape) in tried:
                notes.append(
                    f"C = {c:.3g}: minimum at the {b['edge']} size; the next size rounds to a shape already run "
                    "(or failed)"
                )
            else:
                new.append(point)
                notes.append(
                    f"C = {c:.3g}: minimum at the {b['edge']} size → adding N ≈ {point.shape.non_embedding_params:,}"
                )
        elif b["curvature"] is None:
            best = min(mine, key=lambda pr: pr[1]["loss"])[0]
            nearest = sorted(
                {p.shape.non_embedding_params for p, _ in mine},
                key=lambda n: abs(np.log(n / best.shape.non_embedding_params)),
            )[:3]
            seed = 1 + max(p.seed for p, _ in mine)
            repeats = [
                replace(p, seed=seed) for p, _ in mine if p.shape.non_embedding_params in nearest and p.seed == 0
            ]
            new += repeats
            notes.append(
                f"C = {c:.3g}: no convex parabola inside the grid → repeating {len(repeats)} sizes near the "
                f"minimum with seed {seed}"
            )
    return new, notes
