"""Plots a person puts in a paper: IsoFLOP profiles, optimal N and D vs compute, the law.

Every helper draws on a given `ax`; `common.plotting.figure` writes PNG and SVG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np  # noqa: E402

from common.plotting import figure, pyplot
from scaling.fit import Runs, parametric_loss, predict_isoflop  # noqa: E402


def _budget_colors(n: int):
    return pyplot().cm.viridis(np.linspace(0.05, 0.9, n))


def plot_isoflop_profiles(ax, runs: Runs, fit: dict) -> None:
    minima = fit["minima"]
    for color, m in zip(_budget_colors(len(minima)), minima):
        sel = runs.C == m["compute"]
        order = np.argsort(runs.N[sel])
        ax.plot(runs.N[sel][order], runs.L[sel][order], "o", color=color, ms=4, label=f"C = {m['compute']:.1e} FLOPs")
        if m["parabola"] is not None:
            xs = np.linspace(np.log(runs.N[sel].min()), np.log(runs.N[sel].max()), 100)
            ax.plot(np.exp(xs), np.polyval(m["parabola"], xs), "-", color=color, lw=1.2)
        ax.plot(m["N_opt"], m["loss_opt"], "*", color=color, ms=12, mec="black", mew=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("final loss (nats/token), lower is better")
    ax.set_title("IsoFLOP profiles (★ = compute-optimal N)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)


def plot_optimal_vs_compute(
    ax, fit: dict, key: str, predict_at: list[float], extrapolate_to: float | None = None
) -> None:
    """Minima, the fitted power law and its band, drawn out to `extrapolate_to` (default: just
    past the last prediction or budget, never decades beyond what was asked)."""
    label = {"N_opt": "parameters N_opt", "D_opt": "tokens D_opt"}[key]
    C = np.array([m["compute"] for m in fit["minima"]])
    y = np.array([m[key] for m in fit["minima"]])
    ax.plot(C, y, "o", color="C0", label="IsoFLOP minima")
    reach = extrapolate_to or 1.5 * max(C.max(), max(predict_at, default=0))
    grid = np.logspace(np.log10(C.min()) - 0.2, np.log10(reach), 200)
    preds = [predict_isoflop(fit, c) for c in grid]
    k, e = fit[key]["k"], fit[key]["exponent"]
    ax.plot(grid, [p[key] for p in preds], "-", color="C1", label=f"fit: {k:.3g}·C^{e:.3f}")
    if f"{key}_ci" in preds[0]:
        ax.fill_between(
            grid,
            [p[f"{key}_ci"][0] for p in preds],
            [p[f"{key}_ci"][1] for p in preds],
            color="C1",
            alpha=0.2,
            label="95% bootstrap CI",
        )
    for c in predict_at:
        p = predict_isoflop(fit, c)
        ax.plot(c, p[key], "D", color="C3", ms=7)
        ax.annotate(
            f"{p[key]:.3g} @ {c:.0e}", (c, p[key]), textcoords="offset points", xytext=(-10, 8), ha="right", fontsize=8
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel(label)
    ax.set_title(f"compute-optimal {label}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)


def plot_parametric(ax, runs: Runs, fit: dict, budgets: list[float]) -> None:
    p = fit["params"]
    for color, c in zip(_budget_colors(len(budgets)), budgets):
        n = np.logspace(np.log10(runs.N.min()) - 0.3, np.log10(runs.N.max()) + 0.3, 200)
        sel = np.isclose(runs.C, c, rtol=0.05)
        if np.unique(runs.N[sel]).size >= 2:
            # D along the budget as the runs had it (exact FLOPs count more than 6N per token for small
            # models): the curve then passes through the runs it was fitted to
            slope, icpt = np.polyfit(np.log(runs.N[sel]), np.log(runs.D[sel]), 1)
            d = np.exp(icpt + slope * np.log(n))
        else:
            d = c / (6 * n)
        ax.plot(n, parametric_loss(p, n, d), "-", color=color, label=f"C = {c:.1e}")
        ax.plot(runs.N[sel], runs.L[sel], "o", color=color, ms=3)
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("loss (nats/token), lower is better")
    ax.set_title(f"L = {p['E']:.3g} + {p['A']:.3g}/N^{p['alpha']:.3f} + {p['B']:.3g}/D^{p['beta']:.3f}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)


def write_plots(
    runs: Runs,
    fits: dict,
    out_dir: Path,
    predict_at: list[float],
    diagnostics: dict | None = None,
    holdout: dict | None = None,
) -> list[Path]:
    """Extrapolations (predictions, the law beyond the runs) are drawn only when the diagnostics
    support them; otherwise the figure carries the warnings instead. The held-out check, when
    there is one, is printed under the panels."""
    paths: list[Path] = []
    supported = diagnostics is None or diagnostics["supports_extrapolation"]
    if "isoflop" in fits:
        footer = [] if supported else ["NOT A LAW TO EXTRAPOLATE:", *diagnostics["warnings"]]
        if holdout:
            footer.append(
                f"held-out check (fit without C = {holdout['compute']:.3g}): N_opt "
                f"x{holdout['N_opt_ratio']:.2f} of observed, "
                f"minimum loss {holdout['loss_error']:+.1%}"
            )
        files = [out_dir / "isoflop.png", out_dir / "isoflop.svg"]
        with figure(*files, ncols=3, figsize=(17, 5), dpi=130, footer=footer) as (fig, axes):
            plot_isoflop_profiles(axes[0], runs, fits["isoflop"])
            reach = {} if supported else {"extrapolate_to": float(runs.C.max()) * 1.5}
            plot_optimal_vs_compute(axes[1], fits["isoflop"], "N_opt", predict_at if supported else [], **reach)
            plot_optimal_vs_compute(axes[2], fits["isoflop"], "D_opt", predict_at if supported else [], **reach)
        paths += files
    if "parametric" in fits:
        budgets = sorted(set(np.unique(runs.C).tolist()))
        if len(budgets) > 8:  # scattered budgets (e.g. points read off a figure): pick a few
            budgets = np.logspace(np.log10(min(budgets)), np.log10(max(budgets)), 6).tolist()
        files = [out_dir / "parametric.png", out_dir / "parametric.svg"]
        with figure(*files, figsize=(7, 5), dpi=130) as (fig, ax):
            plot_parametric(ax, runs, fits["parametric"], budgets)
        paths += files
    return paths
