"""Scaling-law fits: IsoFLOP profiles (Chinchilla Approach 2) and the parametric law (Approach 3).

Pure functions over arrays; results are plain dicts (JSON-ready). Bootstraps use a fixed
seed so a fit is reproducible.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp
from threadpoolctl import threadpool_limits
from tqdm import tqdm

FLOPS_PER_PARAM_TOKEN = 6.0  # C ≈ 6ND, used only where the runs give no token count


@dataclass
class Runs:
    """One row per training run: parameters N, tokens D, compute C, final loss L."""

    N: np.ndarray
    D: np.ndarray
    C: np.ndarray
    L: np.ndarray

    def take(self, idx: np.ndarray) -> Runs:
        return Runs(self.N[idx], self.D[idx], self.C[idx], self.L[idx])

    def __len__(self) -> int:
        return len(self.N)


# --- Approach 2: IsoFLOP profiles ----------------------------------------------------------------
def isoflop_minima(runs: Runs, method: str = "parabola") -> list[dict]:
    """Per compute budget, the compute-optimal N and D.

    `min`: the lowest-loss run (CS336's method). `parabola`: fit L = a·(log N)² + b·log N + c
    and take its vertex (Chinchilla's), if the curvature is positive and the vertex lies
    within the sampled range; otherwise fall back to the lowest-loss run. `huber`: the same
    parabola fitted with a Huber loss (Marin's and OLMo-core's practice), so one noisy run
    moves the vertex less.
    """
    out = []
    for c in np.unique(runs.C):
        sel = runs.C == c
        n, d, loss = runs.N[sel], runs.D[sel], runs.L[sel]
        best = int(np.argmin(loss))
        row = {
            "compute": float(c),
            "n_runs": int(sel.sum()),
            "N_opt": float(n[best]),
            "D_opt": float(d[best]),
            "loss_opt": float(loss[best]),
            "method": "min",
            "parabola": None,
        }
        if method in ("parabola", "huber") and np.unique(n).size >= 3:  # a resample may repeat one size
            x = np.log(n)
            # Polynomial.fit rescales log N internally: a plain polyfit is badly conditioned here
            c0, b, a = np.pad(np.polynomial.Polynomial.fit(x, loss, 2).convert().coef, (0, 3))[:3]
            if method == "huber":
                a, b, c0 = _huber_parabola(x, loss, (a, b, c0))
            vertex = -b / (2 * a) if a > 0 else None
            if vertex is not None and x.min() <= vertex <= x.max():
                n_opt = float(np.exp(vertex))
                # tokens at the vertex: interpolate log D linearly in log N within this budget
                slope, icpt = np.polyfit(x, np.log(d), 1)
                row.update(
                    N_opt=n_opt,
                    D_opt=float(np.exp(icpt + slope * vertex)),
                    loss_opt=float(np.polyval([a, b, c0], vertex)),
                    method=method,
                    parabola=[float(a), float(b), float(c0)],
                )
        out.append(row)
    return out


def _huber_parabola(x: np.ndarray, loss: np.ndarray, start: tuple[float, float, float]) -> tuple[float, float, float]:
    """(a, b, c) of L = a·x² + b·x + c under a Huber loss, from the least-squares fit `start`,
    by iteratively reweighted least squares: residuals beyond 1.345 robust standard deviations
    (the usual 95%-efficiency tuning) get weight c/|r|, so they count linearly; the scale (MAD
    of the residuals) is re-estimated each round, so an outlier does not inflate it. Each
    round is a 3×3 weighted normal-equation solve in centred x (well conditioned): a bootstrap
    fits this thousands of times, and scipy's least_squares took 50 s for 1,000 resamples."""
    m = x.mean()
    design = np.stack([(x - m) ** 2, x - m, np.ones_like(x)], axis=1)
    a, b, c = start
    theta = np.array([a, b + 2 * a * m, np.polyval([a, b, c], m)])  # the start, in centred x
    for _ in range(HUBER_IRLS_MAX_ROUNDS):
        resid = loss - design @ theta
        scale = max(1.4826 * float(np.median(np.abs(resid - np.median(resid)))), 1e-6)
        weights = np.minimum(1.0, 1.345 * scale / np.maximum(np.abs(resid), 1e-12))
        weighted = design * weights[:, None]
        new = np.linalg.solve(design.T @ weighted, weighted.T @ loss)
        done = np.allclose(new, theta, rtol=1e-9, atol=1e-12)
        theta = new
        if done:
            break
    a, b_c, c_c = theta
    return float(a), float(b_c - 2 * a * m), float(a * m * m - b_c * m + c_c)


HUBER_IRLS_MAX_ROUNDS = 10  # the exponent and its interval equal 20 rounds' to 1e-5 on CS336's budgets


def power_law(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """y = k·x^e by least squares in log space → (k, e)."""
    e, logk = np.polyfit(np.log(x), np.log(y), 1)
    return float(np.exp(logk)), float(e)


def fit_isoflop(runs: Runs, method: str = "parabola", n_bootstrap: int = 1000, seed: int = 0) -> dict:
    minima = isoflop_minima(runs, method)
    C = np.array([m["compute"] for m in minima])
    if len(C) < 2:
        raise ValueError(f"an IsoFLOP fit needs at least 2 compute budgets, got {len(C)}")
    kn, a = power_law(C, np.array([m["N_opt"] for m in minima]))
    kd, b = power_law(C, np.array([m["D_opt"] for m in minima]))
    # bootstrap: resample runs within each budget, refit everything
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(runs.C == c) for c in C]
    boot = []
    for _ in range(n_bootstrap):
        idx = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        m = isoflop_minima(runs.take(idx), method)
        bc = np.array([r["compute"] for r in m])
        boot.append(power_law(bc, np.array([r["N_opt"] for r in m])) + power_law(bc, np.array([r["D_opt"] for r in m])))
    boot_arr = np.array(boot)  # (n_bootstrap, 4): kn, a, kd, b
    return {
        "method": method,
        "minima": minima,
        "N_opt": {"k": kn, "exponent": a},
        "D_opt": {"k": kd, "exponent": b},
        "bootstrap": {"n": n_bootstrap, "seed": seed, "samples": boot_arr.tolist()},
    }


def predict_isoflop(fit: dict, compute: float, ci: float = 0.95) -> dict:
    kn, a = fit["N_opt"]["k"], fit["N_opt"]["exponent"]
    kd, b = fit["D_opt"]["k"], fit["D_opt"]["exponent"]
    out = {"compute": compute, "N_opt": kn * compute**a, "D_opt": kd * compute**b}
    samples = np.array(fit["bootstrap"]["samples"])
    if len(samples):
        lo, hi = 50 * (1 - ci), 50 * (1 + ci)
        out["N_opt_ci"] = np.percentile(samples[:, 0] * compute ** samples[:, 1], [lo, hi]).tolist()
        out["D_opt_ci"] = np.percentile(samples[:, 2] * compute ** samples[:, 3], [lo, hi]).tolist()
    return out


# --- Approach 3: the parametric law ---------------------------------------------------------------
def _huber_objective(
    theta: np.ndarray, logN: np.ndarray, logD: np.ndarray, logL: np.ndarray, delta: float
) -> tuple[float, np.ndarray]:
    """Σ Huber_δ(LSE(a − α log N, b − β log D, e) − log L) / δ and its gradient; θ = (a, b, e, α, β).

    Divided by δ (same minimiser): with δ = 1e-3 the raw loss and gradient are ~1e-3 in size,
    below L-BFGS-B's absolute tolerances, so a fit started near an optimum stopped at once.
    """
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * logN, b - beta * logD, np.full_like(logN, e)])  # (3, n)
    # the stable log-sum-exp written out: scipy's, general (weights, signs, array API), cost 3/4 of each
    # evaluation on sweep-sized inputs, and a fit makes ~10⁵ evaluations (a 5-point sweep's fit under cProfile:
    # 45 s → 18 s)
    top = terms.max(axis=0)
    lse = top + np.log(np.exp(terms - top).sum(axis=0))
    r = lse - logL
    quad = np.abs(r) <= delta
    loss = np.where(quad, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta)).sum() / delta
    dr = np.where(quad, r, delta * np.sign(r)) / delta  # dHuber/dr, scaled
    w = np.exp(terms - lse)  # softmax weights = dLSE/dterm
    grad = np.array(
        [(dr * w[0]).sum(), (dr * w[1]).sum(), (dr * w[2]).sum(), -(dr * w[0] * logN).sum(), -(dr * w[1] * logD).sum()]
    )
    return float(loss), grad


# Hoffmann et al.'s initialisation grid (App. D.2), as Epoch AI replicated it
INIT_GRID = {
    "a": np.arange(0, 30, 5.0),
    "b": np.arange(0, 30, 5.0),
    "e": np.arange(-1, 1.5, 0.5),
    "alpha": np.arange(0, 2.5, 0.5),
    "beta": np.arange(0, 2.5, 0.5),
}


# a, b, e free; α, β ≥ 0: a negative exponent is a loss that grows with scale (it happens
# on small noisy sweeps); on Chinchilla's points the optimum is interior, so unchanged
BOUNDS = [(None, None)] * 3 + [(0.0, None)] * 2


def _fit_from(starts: np.ndarray, logN, logD, logL, delta) -> tuple[float, np.ndarray]:
    best = (np.inf, starts[0])
    for x0 in starts:
        res = minimize(_huber_objective, x0, args=(logN, logD, logL, delta), jac=True, method="L-BFGS-B", bounds=BOUNDS)
        if res.fun < best[0]:
            best = (float(res.fun), res.x)
    return best


def _grid_starts() -> np.ndarray:
    g = INIT_GRID
    mesh = np.meshgrid(g["a"], g["b"], g["e"], g["alpha"], g["beta"], indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def _params(theta: np.ndarray) -> dict:
    a, b, e, alpha, beta = theta
    total = alpha + beta if alpha + beta > 0 else float("nan")
    return {
        "A": float(np.exp(a)),
        "B": float(np.exp(b)),
        "E": float(np.exp(e)),
        "alpha": float(alpha),
        "beta": float(beta),
        "a": float(beta / total),
        "b": float(alpha / total),
    }


def _screen(starts: np.ndarray, logN, logD, logL, delta: float, keep: int) -> np.ndarray:
    """The `keep` starts with the lowest initial Huber loss (all starts scored at once)."""
    a, b, e, alpha, beta = (starts[:, i : i + 1] for i in range(5))  # (S, 1) each
    terms = np.stack([a - alpha * logN, b - beta * logD, np.broadcast_to(e, (len(starts), len(logN)))])  # (3, S, n)
    r = np.abs(logsumexp(terms, axis=0) - logL)
    loss = np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)).sum(axis=1)
    return starts[np.argsort(loss)[:keep]]


def _single_threaded_worker() -> None:
    # one BLAS thread per worker: with the libraries' default (one per core) two workers on
    # two cores spin against each other and the bootstrap ran 2x slower than one worker
    threadpool_limits(1)


def _fit_resample(args) -> np.ndarray:
    seed, starts, logN, logD, logL, delta = args  # starts: the full fit's optimum
    idx = np.random.default_rng(seed).integers(0, len(logN), len(logN))
    return _fit_from(starts, logN[idx], logD[idx], logL[idx], delta)[1]


def fit_parametric(
    runs: Runs,
    delta: float = 1e-3,
    n_bootstrap: int = 1000,
    seed: int = 0,
    workers: int = 2,
    starts: int = 100,
    progress: bool = True,
) -> dict:
    """L(N, D) = E + A/N^α + B/D^β, fitted as Epoch AI did (arXiv:2404.10102).

    Minimise Σ Huber_δ(LSE(a − α log N, b − β log D, e) − log L) with L-BFGS-B (analytic
    gradient) and keep the best of many starts; A = eᵃ, B = eᵇ, E = eᵉ stay positive by
    construction. The starts are the `starts` best points of Hoffmann et al.'s 4,500-point
    initialisation grid, scored by their initial loss in one vectorised pass: on the
    Chinchilla points the best 10 already reach the full grid's optimum, at 1/50 the cost.
    Bootstrap: each resample is refitted from the full fit's optimum (one start; on Epoch's
    points it reaches the same resample optimum as the best of five grid starts, at 1/8
    the cost); standard errors and 95% intervals come from the resampled estimates, with
    a progress bar on stderr.
    """
    logN, logD, logL = np.log(runs.N), np.log(runs.D), np.log(runs.L)
    loss, theta = _fit_from(_screen(_grid_starts(), logN, logD, logL, delta, starts), logN, logD, logL, delta)
    boot = np.empty((0, 5))
    if n_bootstrap:
        jobs = [(seed + i, theta[None, :], logN, logD, logL, delta) for i in range(n_bootstrap)]
        with ProcessPoolExecutor(workers, initializer=_single_threaded_worker) as pool:
            done = pool.map(_fit_resample, jobs, chunksize=max(1, n_bootstrap // (workers * 20)))
            boot = np.array(
                list(
                    tqdm(
                        done,
                        total=n_bootstrap,
                        desc="parametric bootstrap",
                        unit="resample",
                        disable=not progress,
                        mininterval=1,
                    )
                )
            )
    params = _params(theta)
    out = {
        "params": params,
        "theta": theta.tolist(),
        "huber_loss": loss,
        "delta": delta,
        "n_runs": len(runs),
        "bootstrap": {"n": n_bootstrap, "seed": seed, "samples": boot.tolist()},
    }
    if n_bootstrap:
        derived = np.array([list(_params(t).values()) for t in boot])
        names = list(params)
        out["stderr"] = dict(zip(names, np.nanstd(derived, axis=0, ddof=1).tolist()))
        out["ci95"] = {n: np.nanpercentile(derived[:, i], [2.5, 97.5]).tolist() for i, n in enumerate(names)}
    return out


def parametric_loss(params: dict, N, D):
    return (
        params["E"]
        + params["A"] / np.asarray(N, float) ** params["alpha"]
        + params["B"] / np.asarray(D, float) ** params["beta"]
    )


def _optimal_allocation(p: dict, compute: float) -> tuple[float, float]:
    """argmin_N L(N, C/(6N)): N_opt = G·(C/6)^a, D_opt = (C/6)/N_opt, G = (αA/(βB))^(1/(α+β))."""
    if p["alpha"] <= 0 or p["beta"] <= 0:
        return float("nan"), float("nan")  # loss does not fall with N (or D): no finite optimum
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    n = G * (compute / FLOPS_PER_PARAM_TOKEN) ** p["a"]
    return n, compute / FLOPS_PER_PARAM_TOKEN / n


def predict_parametric(fit: dict, compute: float, ci: float = 0.95) -> dict:
    p = fit["params"]
    n, d = _optimal_allocation(p, compute)
    out = {"compute": compute, "N_opt": n, "D_opt": d, "loss": float(parametric_loss(p, n, d))}
    samples = fit["bootstrap"]["samples"]
    if samples:
        lo, hi = 50 * (1 - ci), 50 * (1 + ci)
        preds = []
        for t in samples:
            q = _params(np.array(t))
            bn, bd = _optimal_allocation(q, compute)
            preds.append((bn, bd, float(parametric_loss(q, bn, bd))))
        arr = np.array(preds)
        out.update(
            N_opt_ci=np.nanpercentile(arr[:, 0], [lo, hi]).tolist(),
            D_opt_ci=np.nanpercentile(arr[:, 1], [lo, hi]).tolist(),
            loss_ci=np.nanpercentile(arr[:, 2], [lo, hi]).tolist(),
        )
    return out
