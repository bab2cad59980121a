"""Whether a table of runs supports a scaling law, and how well the law predicts held-out data.

A fitted exponent means something only when every IsoFLOP curve brackets its minimum (a
run on each side of the best size), the budgets span enough compute, and the exponents
land where compute-optimal laws do (Chinchilla, DeepSeek, Llama 3 all report N_opt ∝ C^a
with a ≈ 0.45–0.55, and a + b = 1 when C ∝ N·D). `diagnose` checks each of these and says,
in words, what is wrong; `holdout_check` refits without the largest budget and reports how
far the law's prediction of that budget's minimum lands from what the runs found.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scaling.fit import Runs, fit_isoflop, fit_parametric, isoflop_minima, parametric_loss

PLAUSIBLE_N_EXPONENT = (0.3, 0.8)  # published N_opt exponents: 0.46-0.58; a wide band for small-scale noise
EXPONENT_SUM_TOLERANCE = 0.15  # |a + b - 1|
MIN_COMPUTE_SPAN = 10.0  # max/min budget; Chinchilla-style fits use 100x and more


def budget_diagnostics(runs: Runs) -> list[dict[str, Any]]:
    """Per budget of two or more runs: is the minimum interior, the parabola's curvature, the
    loss noise from repeats. A budget of one run is not an IsoFLOP profile (parametric-only
    tables such as Chinchilla's give every run its own compute) and has nothing to check."""
    out = []
    for row in isoflop_minima(runs, "parabola"):
        sel = runs.C == row["compute"]
        if sel.sum() < 2:
            continue
        n, loss = runs.N[sel], runs.L[sel]
        best_n = n[int(np.argmin(loss))]
        sizes = np.unique(n)
        # noise: spread of the losses of repeated (same size) runs, pooled over sizes
        repeats = [loss[n == s] for s in sizes if (n == s).sum() > 1]
        noise = float(np.sqrt(np.mean([np.var(r, ddof=1) for r in repeats]))) if repeats else None
        out.append(
            {
                "compute": row["compute"],
                "sizes": len(sizes),
                "interior": bool(sizes.min() < best_n < sizes.max()),
                "edge": None
                if sizes.min() < best_n < sizes.max()
                else ("smallest" if best_n == sizes.min() else "largest"),
                "curvature": row["parabola"][0] if row["parabola"] else None,
                "noise": noise,
            }
        )
    return out


def diagnose(runs: Runs, isoflop: dict | None) -> dict[str, Any]:
    """{budgets, compute_span, exponents, warnings, supports_extrapolation}."""
    budgets = budget_diagnostics(runs)
    warnings = []
    for b in budgets:
        if not b["interior"]:
            warnings.append(
                f"C = {b['compute']:.3g}: the lowest loss is at the {b['edge']} size; the minimum is not bracketed "
                f"(add sizes {'below' if b['edge'] == 'smallest' else 'above'} it)"
            )
        elif b["curvature"] is None:
            warnings.append(
                f"C = {b['compute']:.3g}: no convex parabola with its vertex inside the grid fits the losses; "
                f"its minimum is the lowest run, not a fitted one (noise, or too few sizes)"
            )
    if not budgets:
        notes = [
            "no compute budget holds two or more runs: no IsoFLOP profiles to check, only the parametric law applies"
        ]
    else:
        notes = []
    compute = np.unique(runs.C)
    span = float(compute.max() / compute.min())
    if span < MIN_COMPUTE_SPAN:
        warnings.append(f"the budgets span {span:.1f}x compute; a law needs {MIN_COMPUTE_SPAN:.0f}x or more")
    exponents: dict[str, Any] = {}
    if isoflop is not None:
        a, b = isoflop["N_opt"]["exponent"], isoflop["D_opt"]["exponent"]
        samples = np.array(isoflop["bootstrap"]["samples"])
        ci = np.percentile(samples[:, 1], [2.5, 97.5]).tolist() if len(samples) else None
        exponents = {"N_opt": a, "D_opt": b, "N_opt_ci95": ci, "sum": a + b}
        lo, hi = PLAUSIBLE_N_EXPONENT
        if not lo <= a <= hi:
            warnings.append(
                f"N_opt ∝ C^{a:.2f} is outside the plausible {lo}–{hi}: the grid does not pin the optimum down"
            )
        if abs(a + b - 1) > EXPONENT_SUM_TOLERANCE:
            warnings.append(f"the N_opt and D_opt exponents sum to {a + b:.2f}, not about 1")
    return {
        "budgets": budgets,
        "compute_span": span,
        "exponents": exponents,
        "warnings": warnings,
        "notes": notes,
        "supports_extrapolation": not warnings,
    }


def holdout_check(runs: Runs, n_bootstrap: int = 200) -> dict[str, Any] | None:
    """Refit without the largest budget; predict that budget's N_opt (IsoFLOP power law) and
    minimum loss (the parametric law along the budget's planned (N, D) grid, so the FLOPs
    count of the runs is respected), and compare with what its runs found.

    None when fewer than 3 budgets leave too little to fit.
    """
    compute = np.unique(runs.C)
    if len(compute) < 3:
        return None
    train = runs.take(np.flatnonzero(runs.C < compute[-1]))
    iso = fit_isoflop(train, n_bootstrap=n_bootstrap)
    n_pred = iso["N_opt"]["k"] * compute[-1] ** iso["N_opt"]["exponent"]
    law = fit_parametric(train, n_bootstrap=0)["params"]
    sel = runs.C == compute[-1]
    slope, icpt = np.polyfit(np.log(runs.N[sel]), np.log(runs.D[sel]), 1)
    n_grid = np.exp(np.linspace(np.log(runs.N[sel].min()), np.log(runs.N[sel].max()), 400))
    loss_pred = float(np.min(parametric_loss(law, n_grid, np.exp(icpt + slope * np.log(n_grid)))))
    held = next(m for m in isoflop_minima(runs, "parabola") if m["compute"] == compute[-1])
    return {
        "compute": float(compute[-1]),
        "N_opt_predicted": float(n_pred),
        "N_opt_observed": held["N_opt"],
        "N_opt_ratio": float(n_pred / held["N_opt"]),
        "loss_predicted": loss_pred,
        "loss_observed": held["loss_opt"],
        "loss_error": float(loss_pred / held["loss_opt"] - 1),
    }
