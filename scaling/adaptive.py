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
3. **Not yet precise enough** (`target_interval`, once rules 1-2 add nothing): bootstrap the
   IsoFLOP fit; while the N_opt exponent's 95% interval reaches further than `target_interval`
   from the estimate, repeat (new seed) the 3 sizes nearest the minimum of the budget whose
   vertex adds the most variance to the exponent: its vertex's bootstrap variance times its
   leverage on the slope, (log C − mean log C)². `max_minutes` caps the whole sweep's time.
A point the budget cannot train (too few steps or tokens per parameter, over the token
cap) is reported and not added. Rules read only the runs' (N, D, C, L), so the decisions
are reproducible and every added run is an ordinary cached `pretrain` sub-flow.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scaling.diagnostics import budget_diagnostics
from scaling.fit import Runs, fit_isoflop, isoflop_minima
from scaling.grid import GridPoint

MAX_EDGE_STEPS = 4  # how far past the edge an added size may go looking for a new shape

RULES = (
    "unbracketed minimum → one more size beyond the edge (× step)",
    "no convex parabola inside the grid → the 3 sizes nearest the minimum again with a new seed",
    "exponent interval wider than target_interval → the 3 sizes nearest the minimum of the budget that adds "
    "the most variance to the exponent, with a new seed",
)


class AdaptiveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_rounds: int = Field(2, ge=0, description="rounds of added runs after the grid")
    step: float | None = Field(None, gt=1, description="size ratio of an added size; None: the grid's median ratio")
    target_interval: float | None = Field(
        None,
        gt=0,
        description="add repeats until the N_opt exponent's 95% bootstrap interval lies within ± this of the "
        "estimate (rule 3); None: rules 1-2 only",
    )
    max_minutes: float | None = Field(
        None, gt=0, description="no new round once the sweep has run this long (minutes, the grid included)"
    )
    n_bootstrap: int = Field(200, ge=20, description="resamples behind rule 3's interval and vertex variances")


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
            repeats, seed = _repeat_near_minimum(mine)
            new += repeats
            notes.append(
                f"C = {c:.3g}: no convex parabola inside the grid → repeating {len(repeats)} sizes near the "
                f"minimum with seed {seed}"
            )
    if not new and cfg.target_interval is not None:
        a, lo, hi = exponent_interval(runs, cfg.n_bootstrap)
        width = max(a - lo, hi - a)
        if width <= cfg.target_interval:
            notes.append(
                f"N_opt exponent {a:.3f}, 95% interval [{lo:.3f}, {hi:.3f}]: within ±{cfg.target_interval:g} "
                f"(±{width:.3f}), target reached"
            )
        else:
            c = least_certain_budget(runs, cfg.n_bootstrap)
            repeats, seed = _repeat_near_minimum([(p, r) for p, r in zip(done, rows) if p.compute == c])
            new += repeats
            notes.append(
                f"N_opt exponent {a:.3f}, 95% interval [{lo:.3f}, {hi:.3f}] reaches ±{width:.3f} > "
                f"±{cfg.target_interval:g} → repeating {len(repeats)} sizes near the minimum of C = {c:.3g} "
                f"(its vertex adds the most variance) with seed {seed}"
            )
    return new, notes


def _repeat_near_minimum(mine: list[tuple[GridPoint, dict]]) -> tuple[list[GridPoint], int]:
    """The budget's 3 sizes nearest its lowest loss, again with a seed no run of the budget has used."""
    best = min(mine, key=lambda pr: pr[1]["loss"])[0]
    nearest = sorted(
        {p.shape.non_embedding_params for p, _ in mine},
        key=lambda n: abs(np.log(n / best.shape.non_embedding_params)),
    )[:3]
    seed = 1 + max(p.seed for p, _ in mine)
    firsts = {}
    for p, _ in mine:  # one run per size: the first seed's
        if p.shape.non_embedding_params in nearest:
            firsts.setdefault(p.shape.non_embedding_params, p)
    return [replace(p, seed=seed) for p in firsts.values()], seed


def exponent_interval(runs: Runs, n_bootstrap: int, seed: int = 0) -> tuple[float, float, float]:
    """The IsoFLOP fit's N_opt exponent and its 95% bootstrap interval (as the sweep's summary reports them)."""
    fit = fit_isoflop(runs, n_bootstrap=n_bootstrap, seed=seed)
    lo, hi = np.percentile(np.array(fit["bootstrap"]["samples"])[:, 1], [2.5, 97.5])
    return fit["N_opt"]["exponent"], float(lo), float(hi)


def least_certain_budget(runs: Runs, n_bootstrap: int, seed: int = 0) -> float:
    """The budget whose vertex adds the most variance to the exponent: the bootstrap variance of its log N_opt
    (its runs resampled) times its leverage on a least-squares slope in log C, (log C − mean log C)²."""
    rng = np.random.default_rng(seed)
    budgets = np.unique(runs.C)
    leverage = (np.log(budgets) - np.log(budgets).mean()) ** 2
    share = []
    for c, lev in zip(budgets, leverage):
        idx = np.flatnonzero(runs.C == c)
        vertices = [
            np.log(isoflop_minima(runs.take(rng.choice(idx, size=len(idx), replace=True)))[0]["N_opt"])
            for _ in range(n_bootstrap)
        ]
        share.append(float(np.var(vertices)) * lev)
    return float(budgets[int(np.argmax(share))])
