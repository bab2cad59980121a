"""`fit_runs`: fit a table of runs with either or both methods, write fit.json and plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from scaling.diagnostics import diagnose, holdout_check
from scaling.fit import Runs, fit_isoflop, fit_parametric, predict_isoflop, predict_parametric
from scaling.plots import write_plots


def fit_runs(
    runs: Runs,
    out_dir: Path,
    method: str = "both",
    predict_at: list[float] = (1e23,),
    n_bootstrap: int = 1000,
    workers: int = 2,
    flops: str = "as given per run (C column)",
    failed_points: int = 0,
) -> dict:
    """`flops` says how the runs' compute was counted; fit.json records it next to the laws.
    The IsoFLOP law is fitted with least-squares parabolas (the one the diagnostics and plots
    use) and with Huber-robust ones (`isoflop_huber`), both reported. `failed_points`: runs
    left out of the table because they failed, counted in the diagnostics."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fits: dict = {}
    if method in ("isoflop", "both"):
        if len(set(runs.C.tolist())) >= 2 and len(runs) >= 2 * len(set(runs.C.tolist())):
            fits["isoflop"] = fit_isoflop(runs, n_bootstrap=n_bootstrap)
            fits["isoflop_huber"] = fit_isoflop(runs, method="huber", n_bootstrap=n_bootstrap)
        elif method == "isoflop":
            raise ValueError("IsoFLOP needs several runs at each of >= 2 compute budgets")
    if method in ("parametric", "both"):
        fits["parametric"] = fit_parametric(runs, n_bootstrap=n_bootstrap, workers=workers)
    diagnostics = diagnose(runs, fits.get("isoflop"))
    if failed_points:
        diagnostics["failed_points"] = failed_points
        diagnostics["notes"].append(
            f"{failed_points} point{'s' if failed_points != 1 else ''} failed and "
            f"{'are' if failed_points != 1 else 'is'} left out of the fit (runs.csv has the errors)"
        )
    holdout = holdout_check(runs, n_bootstrap=min(n_bootstrap, 200)) if "isoflop" in fits else None
    predictions = []
    for c in predict_at if diagnostics["supports_extrapolation"] else []:
        row: dict = {"compute": c}
        if "isoflop" in fits:
            row["isoflop"] = predict_isoflop(fits["isoflop"], c)
        if "parametric" in fits:
            row["parametric"] = predict_parametric(fits["parametric"], c)
        predictions.append(row)
    result = {
        "n_runs": len(runs),
        "fits": fits,
        "diagnostics": diagnostics,
        "holdout": holdout,
        "predictions": predictions,
        "flops": flops,
        "parametric_plot": "each budget's curve is drawn at its own runs' (N, D)",
    }
    plots = write_plots(runs, fits, out_dir, list(predict_at), diagnostics, holdout)
    result["plots"] = [p.name for p in plots]
    (out_dir / "fit.json").write_text(json.dumps(result, indent=1))
    return result


def _interval(prediction: dict, name: str) -> str:
    ci = prediction.get(name + "_ci")
    return f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""


def summary_lines(result: dict) -> list[str]:
    lines = []
    for name in ("isoflop", "isoflop_huber"):
        iso = result["fits"].get(name)
        if iso:
            samples = np.array(iso["bootstrap"]["samples"])
            ci = (
                f" (95% interval {np.percentile(samples[:, 1], 2.5):.3f}–{np.percentile(samples[:, 1], 97.5):.3f})"
                if len(samples)
                else ""
            )
            lines.append(
                f"IsoFLOP ({iso['method']} parabolas): N_opt = "
                f"{iso['N_opt']['k']:.3g}·C^{iso['N_opt']['exponent']:.3f}{ci}, "
                f"D_opt = {iso['D_opt']['k']:.3g}·C^{iso['D_opt']['exponent']:.3f}"
            )
    par = result["fits"].get("parametric")
    if par:
        p, se = par["params"], par.get("stderr", {})

        def fmt(k):
            return f"{p[k]:.4g}" + (f" ± {se[k]:.2g}" if k in se else "")

        lines.append(
            f"parametric: L(N, D) = E + A/N^α + B/D^β with E = {fmt('E')}, A = {fmt('A')}, B = {fmt('B')}, "
            f"α = {fmt('alpha')}, β = {fmt('beta')}; N_opt ∝ C^{fmt('a')}, D_opt ∝ C^{fmt('b')}"
        )
    diag = result.get("diagnostics")
    if diag:
        ex = diag["exponents"]
        if ex.get("N_opt_ci95"):
            lines.append(
                f"N_opt exponent {ex['N_opt']:.3f}, 95% bootstrap interval [{ex['N_opt_ci95'][0]:.3f}, "
                f"{ex['N_opt_ci95'][1]:.3f}]; "
                f"compute span {diag['compute_span']:.0f}x"
            )
        lines += [f"note: {n}" for n in diag.get("notes", [])]
        lines += [f"WARNING: {w}" for w in diag["warnings"]]
        if not diag["supports_extrapolation"]:
            lines.append("no extrapolated predictions: the runs do not support the law (see the warnings)")
    h = result.get("holdout")
    if h:
        lines.append(
            f"held-out check (fit without C = {h['compute']:.3g}): N_opt predicted {h['N_opt_predicted']:.3g} "
            f"vs {h['N_opt_observed']:.3g} "
            f"observed (x{h['N_opt_ratio']:.2f}); minimum loss {h['loss_predicted']:.4g} vs "
            f"{h['loss_observed']:.4g} ({h['loss_error']:+.1%})"
        )
    for pred in result["predictions"]:
        c = pred["compute"]
        for method in ("isoflop", "parametric"):
            if method in pred:
                q = pred[method]
                loss = f", loss {q['loss']:.4g}{_interval(q, 'loss')}" if "loss" in q else ""
                lines.append(
                    f"C = {c:.3g} ({method}): N_opt = {q['N_opt']:.3g}{_interval(q, 'N_opt')}, D_opt = "
                    f"{q['D_opt']:.3g}{_interval(q, 'D_opt')}{loss}"
                )
    return lines
