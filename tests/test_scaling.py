"""Scaling-law fits against published results, grids, and the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lm.accounting import count
from lm.model import ModelConfig
from scaling.fit import Runs, fit_isoflop, fit_parametric, isoflop_minima, predict_isoflop, predict_parametric
from scaling.grid import shape_for
from scaling.runs import load_runs
from scaling.sweep import SweepConfig

# Epoch AI's replication of Chinchilla's Approach 3 (arXiv:2404.10102): estimates and standard errors
EPOCH = {
    "E": (1.817, 0.026),
    "A": (482.01, 124.52),
    "B": (2085.43, 1293.28),
    "alpha": (0.348, 0.015),
    "beta": (0.366, 0.021),
}


@pytest.fixture(scope="module")
def chinchilla(data) -> Runs:
    return load_runs(data / "chinchilla-epoch" / "svg_extracted_data.csv", drop_highest_loss=5)


def test_parametric_fit_reproduces_epoch_ai(chinchilla):
    assert len(chinchilla) == 240
    fit = fit_parametric(chinchilla, n_bootstrap=40, workers=2)  # enough for standard errors within the ranges below
    p = fit["params"]
    for name, (value, se) in EPOCH.items():
        assert abs(p[name] - value) <= se, f"{name}: {p[name]:.4g} vs Epoch {value} ± {se}"
    assert abs(p["a"] - 0.513) < 0.02
    # bootstrap standard errors of the right size (Epoch: E 0.026, α 0.015, β 0.021)
    assert (
        0.01 < fit["stderr"]["E"] < 0.05
        and 0.007 < fit["stderr"]["alpha"] < 0.03
        and 0.01 < fit["stderr"]["beta"] < 0.04
    )
    pred = predict_parametric(fit, 1e23)
    assert pred["N_opt_ci"][0] < pred["N_opt"] < pred["N_opt_ci"][1]


def test_parametric_fit_recovers_a_known_law():
    rng = np.random.default_rng(0)
    truth = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.30}
    N = np.exp(rng.uniform(np.log(1e7), np.log(1e10), 150))
    D = np.exp(rng.uniform(np.log(1e9), np.log(1e12), 150))
    L = (truth["E"] + truth["A"] / N ** truth["alpha"] + truth["B"] / D ** truth["beta"]) * np.exp(
        rng.normal(0, 0.002, 150)
    )
    p = fit_parametric(Runs(N, D, 6 * N * D, L), n_bootstrap=0)["params"]
    for k, v in truth.items():
        assert p[k] == pytest.approx(v, rel=0.15), k


def test_isoflop_fit_on_cs336_curves(data):
    runs = load_runs(data / "isoflops" / "isoflops_curves.json")
    fit = fit_isoflop(runs, n_bootstrap=100)
    assert len(fit["minima"]) == 9 and all(m["method"] == "parabola" for m in fit["minima"])
    assert 0.4 < fit["N_opt"]["exponent"] < 0.6 and 0.4 < fit["D_opt"]["exponent"] < 0.6
    p = predict_isoflop(fit, 1e24)
    assert p["N_opt_ci"][0] < p["N_opt"] < p["N_opt_ci"][1]
    lowest = isoflop_minima(runs, "min")
    assert all(m["method"] == "min" for m in lowest)


def test_parabola_vertex_on_exact_quadratic():
    n = np.exp(np.linspace(np.log(1e6), np.log(1e8), 7))
    loss = 0.5 * (np.log(n) - np.log(1e7)) ** 2 + 3.0
    runs = Runs(n, 1e18 / (6 * n), np.full(7, 1e18), loss)
    m = isoflop_minima(runs)[0]
    assert m["N_opt"] == pytest.approx(1e7, rel=1e-6) and m["loss_opt"] == pytest.approx(3.0)


def test_huber_parabola_ignores_one_outlier_the_least_squares_one_follows():
    n = np.exp(np.linspace(np.log(1e6), np.log(1e8), 7))
    loss = 0.5 * (np.log(n) - np.log(1e7)) ** 2 + 3.0
    loss[1] += 1.5  # one diverged-looking run on the small side
    runs = Runs(n, 1e18 / (6 * n), np.full(7, 1e18), loss)
    huber, plain = isoflop_minima(runs, "huber")[0], isoflop_minima(runs, "parabola")[0]
    assert huber["method"] == "huber" and huber["N_opt"] == pytest.approx(1e7, rel=0.02)
    assert abs(np.log(plain["N_opt"] / 1e7)) > 5 * abs(np.log(huber["N_opt"] / 1e7))
    # on clean data the two agree
    clean = Runs(n, 1e18 / (6 * n), np.full(7, 1e18), 0.5 * (np.log(n) - np.log(1e7)) ** 2 + 3.0)
    assert isoflop_minima(clean, "huber")[0]["N_opt"] == pytest.approx(1e7, rel=1e-4)


def test_runs_tables_in_csv_json_and_parquet_leave_failed_points_out(tmp_path, data):
    """A W&B-style CSV, the same rows as Parquet and JSON, give the same runs; rows with an
    error or a non-finite loss (a sweep's failed points) are not fitted."""
    import pandas as pd

    reference = load_runs(data / "isoflops" / "isoflops_curves.json")
    table = pd.DataFrame(
        {
            "Name": [f"run-{i}" for i in range(len(reference))],
            "params": reference.N,
            "compute_budget": reference.C,
            "final_loss": reference.L,
            "error": "",
        }
    )
    failed = pd.DataFrame(
        {
            "Name": ["diverged", "oom"],
            "params": [1e8, 2e8],
            "compute_budget": [1e18, 1e18],
            "final_loss": [float("nan"), 2.0],
            "error": ["", "OutOfMemoryError: CUDA out of memory"],
        }
    )
    full = pd.concat([table, failed], ignore_index=True)
    full.to_csv(tmp_path / "wandb.csv", index=False)
    full.to_parquet(tmp_path / "runs.parquet")
    (tmp_path / "runs.json").write_text(full.to_json(orient="records"))
    for name in ("wandb.csv", "runs.parquet", "runs.json"):
        runs = load_runs(tmp_path / name)
        assert len(runs) == len(reference) and np.allclose(runs.L, reference.L) and np.allclose(runs.N, reference.N), (
            name
        )
    with pytest.raises(ValueError, match="need columns parameters, loss"):
        load_runs_from = pd.DataFrame({"x": [1.0]})
        load_runs_from.to_csv(tmp_path / "bad.csv", index=False)
        load_runs(tmp_path / "bad.csv")


def test_shapes_and_grid_use_exact_counts():
    s = shape_for(1e6, 4096, 128, aspect=32, head_dim=16)
    assert abs(np.log(s.non_embedding_params / 1e6)) < 0.35
    assert (
        s.non_embedding_params
        == count(
            ModelConfig(
                vocab_size=4096, context_length=128, d_model=s.d_model, num_layers=s.num_layers, num_heads=s.num_heads
            )
        ).non_embedding_params
    )
    sweep = SweepConfig(
        budgets=[1e12, 1e14],
        sizes=[1e4, 1e5, 1e6],
        train={"model": {"context_length": 128}, "batch_size": 16, "max_steps": 1},
    )
    grid = sweep.grid(4096)
    assert any(p.skipped for p in grid if p.compute == 1e12)
    # a window on tokens per parameter trims the tiny models of the large budget
    windowed = sweep.model_copy(update={"max_tokens_per_param": 1000}).grid(4096)
    [tiny] = [p for p in windowed if p.compute == 1e14 and p.shape.non_embedding_params < 3e4]
    assert tiny.skipped and "tokens/param > 1000" in tiny.skipped
    # ...but an adaptive addition goes where the losses point (the window is only a prior)
    wide = sweep.model_copy(update={"max_tokens_per_param": 1000}).point(
        4096, 1e14, tiny.shape.non_embedding_params, window=False
    )
    assert wide.skipped is None and wide.shape == tiny.shape
    for p in grid:
        per_token = count(
            ModelConfig(
                vocab_size=4096,
                context_length=128,
                d_model=p.shape.d_model,
                num_layers=p.shape.num_layers,
                num_heads=p.shape.num_heads,
            )
        ).flops_per_token
        assert p.tokens <= p.compute / per_token < p.tokens + 2048


def test_cli_fit_writes_plots_and_fit_json(tmp_path, data):
    out = tmp_path / "fit"
    r = subprocess.run(
        [
            str(Path(sys.executable).parent / "lmforge"),
            "scaling",
            "fit",
            str(data / "isoflops" / "isoflops_curves.json"),
            "--method",
            "isoflop",
            "--predict",
            "1e23",
            "--out",
            str(out),
            "--bootstrap",
            "50",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert Path(r.stdout.strip().splitlines()[-1]) == out.resolve()
    fit = json.loads((out / "fit.json").read_text())
    assert fit["predictions"][0]["compute"] == 1e23 and "N_opt = " in r.stderr
    for name in ("isoflop.png", "isoflop.svg"):
        assert (out / name).stat().st_size > 10_000


def _chinchilla_grid(budgets, sizes_per_budget=7, width=1.0, a=0.5, noise=0.0, seed=0) -> Runs:
    """IsoFLOP runs of a known law L = E + A/N^α + B/D^β, D = C/6N, with N_opt ∝ C^a by construction."""
    rng = np.random.default_rng(seed)
    N, D, C, L = [], [], [], []
    for c in budgets:
        center = 0.1 * c**a
        for n in center * np.exp(np.linspace(-width, width, sizes_per_budget) * 1.5):
            d = c / (6 * n)
            N.append(n), D.append(d), C.append(c)
            L.append(1.7 + 400 / n**0.34 + 1500 / d**0.34 + rng.normal(0, noise))
    return Runs(*(np.array(x) for x in (N, D, C, L)))


def test_diagnostics_accept_a_bracketed_grid_and_flag_edges_and_implausible_exponents(data):
    from scaling.diagnostics import diagnose, holdout_check

    good = _chinchilla_grid([1e18, 1e19, 1e20, 1e21])
    diag = diagnose(good, fit_isoflop(good, n_bootstrap=50))
    assert diag["supports_extrapolation"], diag["warnings"]
    assert all(b["interior"] for b in diag["budgets"]) and diag["compute_span"] == pytest.approx(1000)
    h = holdout_check(good, n_bootstrap=20)
    assert abs(h["loss_error"]) < 0.03 and 0.7 < h["N_opt_ratio"] < 1.4

    # the same law sampled only on the small side of each optimum: every minimum sits on the grid's edge
    n = good.N * np.exp(-2.5)
    edge = Runs(n, good.C / (6 * n), good.C, 1.7 + 400 / n**0.34 + 1500 / (good.C / (6 * n)) ** 0.34)
    diag = diagnose(edge, fit_isoflop(edge, n_bootstrap=20))
    assert not diag["supports_extrapolation"] and all(b["edge"] == "largest" for b in diag["budgets"])
    assert any("not bracketed" in w and "above" in w for w in diag["warnings"])

    narrow = _chinchilla_grid([1e18, 2e18])  # a 2x span
    assert any("span" in w for w in diagnose(narrow, fit_isoflop(narrow, n_bootstrap=20))["warnings"])

    # the CS336 IsoFLOP curves: bracketed, exponent in range
    real = load_runs(data / "isoflops" / "isoflops_curves.json")
    diag = diagnose(real, fit_isoflop(real, n_bootstrap=50))
    assert diag["supports_extrapolation"], diag["warnings"]


def test_implausible_exponent_is_flagged():
    from scaling.diagnostics import diagnose

    # optimum shrinking with compute (the old demo's N ∝ C^1.64 failure shows up as any exponent outside 0.3-0.8)
    fit = {"N_opt": {"k": 1.0, "exponent": 1.64}, "D_opt": {"k": 1.0, "exponent": -0.64}, "bootstrap": {"samples": []}}
    diag = diagnose(_chinchilla_grid([1e18, 1e19, 1e20]), fit)
    assert any("plausible" in w for w in diag["warnings"]) and not diag["supports_extrapolation"]


def test_plotted_parametric_law_passes_through_its_runs(tmp_path):
    """Runs whose compute counts more than 6ND: the curve is drawn at the runs' own D."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scaling.fit import parametric_loss
    from scaling.plots import plot_parametric

    runs = _chinchilla_grid([1e18, 1e19])
    runs = Runs(runs.N, runs.D, runs.C * 3.0, runs.L)  # e.g. exact FLOPs of tiny models: C = 18ND
    params = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.34}
    fig, ax = plt.subplots()
    plot_parametric(ax, runs, {"params": params}, sorted(set(runs.C.tolist())))
    curves = [line for line in ax.get_lines() if line.get_label().startswith("C = ")]
    assert len(curves) == 2
    for line, c in zip(curves, sorted(set(runs.C.tolist()))):
        x, y = line.get_data()
        for n, loss in zip(runs.N[runs.C == c], runs.L[runs.C == c]):
            assert np.interp(np.log(n), np.log(x), y) == pytest.approx(loss, rel=1e-3)
    plt.close(fig)
    assert parametric_loss(params, np.array([1e8]), np.array([1e9]))[0] > 1.7


def test_adaptive_round_extends_unbracketed_budgets_and_repeats_flat_ones():
    """An edge minimum gets the next size beyond the edge; a bracketed curve with no convex
    parabola gets its three sizes nearest the minimum again with a new seed; a good curve
    gets nothing."""
    from scaling.adaptive import next_points

    cfg = SweepConfig(
        budgets=[1e12, 3e12, 1e13],
        sizes=[2e4, 5e4, 1.2e5, 3e5],
        min_tokens_per_param=0,
        train={"model": {"context_length": 64}, "batch_size": 8, "max_steps": 1},
    )
    points = [p for p in cfg.grid(512) if p.skipped is None]
    losses = {1e12: [3.0, 2.9, 2.8, 2.7], 3e12: [2.9, 2.6, 2.5, 2.7], 1e13: [2.6, 2.3, 2.55, 2.31]}
    rows = [
        {"compute": p.compute, "parameters": p.shape.non_embedding_params, "tokens": p.tokens, "loss": loss}
        for c in cfg.budgets
        for p, loss in zip([q for q in points if q.compute == c], losses[c])
    ]
    added, notes = next_points(rows, points, lambda c, n: cfg.point(512, c, n), cfg.adaptive, cfg.sizes)
    largest = max(p.shape.non_embedding_params for p in points)
    extended = [p for p in added if p.compute == 1e12]
    assert len(extended) == 1 and extended[0].shape.non_embedding_params > 2 * largest and extended[0].seed == 0
    assert not [p for p in added if p.compute == 3e12]
    repeated = [p for p in added if p.compute == 1e13]
    assert len(repeated) == 3 and {p.seed for p in repeated} == {1}
    assert cfg.point_config(repeated[0]).seed == cfg.train.seed + 1  # a repeat differs only in its seed
    assert len(notes) == 2


def test_adaptive_edge_step_skips_sizes_that_round_to_a_shape_already_run():
    """Tiny models' shapes are coarse (whole heads): one √2 step below (1 layer, d 16) rounds
    back to it, so the rule steps on to the next smaller shape instead of giving up."""
    from scaling.adaptive import next_points

    cfg = SweepConfig(
        budgets=[3e10, 6e10],
        sizes=[4e3, 8e3, 1.6e4],
        flops="6n",
        aspect=16,
        head_dim=8,
        min_tokens_per_param=0,
        adaptive={"step": 2**0.5},
        train={"model": {"context_length": 128}, "batch_size": 16, "max_steps": 1},
    )
    points = [p for p in cfg.grid(257) if p.skipped is None]
    rows = [
        {
            "compute": p.compute,
            "parameters": p.shape.non_embedding_params,
            "tokens": p.tokens,
            "loss": 2.0 + 1e-5 * p.shape.non_embedding_params,
        }
        for p in points
    ]
    added, notes = next_points(rows, points, lambda c, n: cfg.point(257, c, n, window=False), cfg.adaptive, cfg.sizes)
    smallest = min(p.shape.non_embedding_params for p in points)
    assert len(added) == 2 and all(p.shape.non_embedding_params < smallest for p in added), notes


def test_kaplan_lr_rule_scales_the_learning_rate_with_size():

    cfg = SweepConfig(
        budgets=[1e12, 1e13],
        sizes=[2e4, 3e5],
        lr_rule="kaplan",
        min_tokens_per_param=0,
        train={"model": {"context_length": 64}, "batch_size": 8, "max_steps": 1, "lr": 3e-3, "min_lr": 3e-4},
    )
    small, large = sorted((p for p in cfg.grid(512) if p.compute == 1e12), key=lambda p: p.shape.non_embedding_params)
    lr_small, lr_large = cfg.point_config(small).lr, cfg.point_config(large).lr
    assert lr_small == pytest.approx(0.003239 - 0.0001395 * math.log(small.shape.non_embedding_params))
    assert lr_large < lr_small
    assert cfg.point_config(large).min_lr == pytest.approx(lr_large / 10)  # min_lr keeps the recipe's ratio
    assert SweepConfig(**{**cfg.model_dump(), "lr_rule": "constant"}).point_config(large).lr == 3e-3


def test_adaptive_round_ignores_failed_points():
    """A failed point (an `error` in its row, no loss) is no evidence for the next round."""
    from scaling.adaptive import AdaptiveConfig, next_points
    from scaling.sweep import SweepConfig

    cfg = SweepConfig(budgets=[1e12, 3e12], sizes=[2e4, 8e4, 3.2e5], head_dim=16, min_tokens_per_param=0.0)
    points = [p for p in cfg.grid(257) if p.skipped is None and p.compute == 1e12]
    n = [p.shape.non_embedding_params for p in points]
    rows = [
        {
            "compute": p.compute,
            "parameters": p.shape.non_embedding_params,
            "tokens": p.tokens,
            "loss": loss,
            "error": "",
        }
        for p, loss in zip(points, [3.0, 2.8, 2.9])
    ]
    make = lambda c, size: cfg.point(257, c, size, window=False)  # noqa: E731
    added, _ = next_points(rows, points, make, AdaptiveConfig(), cfg.sizes)
    assert added == []  # bracketed
    rows[2] = {**rows[2], "loss": float("nan"), "error": "TrainingDiverged: loss became nan by step 3"}
    added, notes = next_points(rows, points, make, AdaptiveConfig(), cfg.sizes)
    # the minimum is now at the largest finished size; the next size up is the failed one: not
    # retried, the round steps past it
    assert len(n) == 3 and len(added) == 1 and added[0].shape.non_embedding_params > n[2], notes


def test_adaptive_precision_rule_repeats_where_the_exponent_is_least_certain_until_the_target():
    """Rule 3: bracketed, convex curves, but the largest budget's losses are noisy: with a tight target the
    round repeats the 3 sizes nearest that budget's minimum (new seed); the middle budget, with no leverage on
    the slope, never gets them; a loose target is reached and adds nothing."""
    from scaling.adaptive import AdaptiveConfig, exponent_interval, next_points, runs_of

    cfg = SweepConfig(
        budgets=[1e12, 3e12, 1e13],
        sizes=[1e4 * 2 ** (i / 2) for i in range(11)],
        min_tokens_per_param=0,
        train={"model": {"context_length": 64}, "batch_size": 8, "max_steps": 1},
    )
    points = [p for p in cfg.grid(512) if p.skipped is None]
    noise = {1e12: 0.0, 3e12: 0.003, 1e13: 0.03}
    rng = np.random.default_rng(0)
    rows = []
    for p in points:
        x = math.log(p.shape.non_embedding_params) - (math.log(7e4) + 0.15 * math.log(p.compute / 3e12))
        loss = 3.0 - 0.1 * math.log10(p.compute) + 0.05 * x**2 + rng.normal(0, noise[p.compute])
        rows.append(
            {"compute": p.compute, "parameters": p.shape.non_embedding_params, "tokens": p.tokens, "loss": loss}
        )
    make = lambda c, n: cfg.point(512, c, n, window=False)  # noqa: E731
    a, lo, hi = exponent_interval(runs_of(rows), 200)
    assert hi - lo > 0.02  # the noisy budget leaves the exponent uncertain

    added, notes = next_points(rows, points, make, AdaptiveConfig(target_interval=0.01), cfg.sizes)
    assert len(added) == 3 and {p.compute for p in added} == {1e13} and {p.seed for p in added} == {1}, notes
    assert "reaches" in notes[-1] and "C = 1e+13" in notes[-1]

    added, notes = next_points(rows, points, make, AdaptiveConfig(target_interval=1.0), cfg.sizes)
    assert added == [] and "target reached" in notes[-1]
    added, notes = next_points(rows, points, make, AdaptiveConfig(), cfg.sizes)
    assert added == [] and notes == []  # no target: rules 1-2 only
