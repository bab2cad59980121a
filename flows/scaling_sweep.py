"""The `scaling-sweep` flow: one cached `pretrain` sub-flow per grid point, then the fits."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.futures import as_completed

from flows.config import demo_config
from flows.registry import KEY_PARAMETERS, StageSpec
from flows.runners import RunnerConfig, make_task_runner
from flows.stage import run_stage
from flows.store import ArtifactStore, manifest_summary
from flows.ui import publish_figures
from lm.train import resolve_auto
from scaling.adaptive import RULES, next_points
from scaling.grid import GridPoint, grid_table
from scaling.report import fit_runs, summary_lines
from scaling.runs import runs_from_table
from scaling.sweep import SweepConfig

STAGE = "scaling-sweep"


@task(name="grid-point", task_run_name="C={point.compute:.1e} N={point.shape.non_embedding_params}")
def run_point(
    tokenize_artifact: str, point: GridPoint, config: SweepConfig, sweep_started: float, slots: Path, store_home: Path
) -> dict:
    """Train one grid point as a pretrain sub-flow (cached on its own), on this worker's device
    (`claim_device`). A point that fails (diverged, out of memory) is a row with its error,
    left out of the fit, not the sweep's end."""
    # imported here, not pickled with this task: a process worker pickles the task's function by
    # value, and a flow pickled that way loses the module globals its parameter types live in
    from flows.pretrain import pretrain

    claim_device(slots, config.devices, config.concurrency)
    # a Dask worker started elsewhere has its own environment: the point's artifact must land in
    # the sweep's store (a shared filesystem on a cluster), not in the worker's default one
    os.environ["LMFORGE_HOME"] = str(store_home)
    row = {
        "compute": point.compute,
        "compute_actual": float("nan"),
        "parameters": point.shape.non_embedding_params,
        "tokens": point.tokens,
        "loss": float("nan"),
        "layers": point.shape.num_layers,
        "d_model": point.shape.d_model,
        "seed": point.seed,
        "pretrain_artifact": "",
        "reused": False,
        "error": "",
    }
    try:
        path = Path(pretrain(tokenize_artifact, config.point_config(point), ui_key=None))
    except Exception as e:  # noqa: BLE001 - any failure of one point is recorded; Ctrl-C still stops the sweep
        get_run_logger().warning(
            "grid point C=%.2e N=%d failed: %s: %s",
            point.compute,
            point.shape.non_embedding_params,
            type(e).__name__,
            e,
        )
        return {**row, "error": f"{type(e).__name__}: {e}"[:500]}
    manifest = json.loads((path / "manifest.json").read_text())
    summary = manifest["summary"]
    return {
        **row,
        "compute_actual": summary["flops"],
        "parameters": summary["non_embedding_params"],
        "tokens": summary["tokens"],
        "loss": summary["final_val_loss"],
        "pretrain_artifact": path.name,
        "reused": (path / "manifest.json").stat().st_mtime < sweep_started,
    }


_claimed: dict[str, object] = {}  # this worker's device slot, held for the worker's life


def claim_device(slots: Path, devices: list[str] | None, workers: int) -> None:
    """Pin this worker (a thread or a process of the sweep's task runner) to one device slot:
    the first free one of `devices` (or of `workers` CPU slots), taken with a file lock under
    `slots` and kept while the worker lives. A CUDA slot becomes the worker's current device
    (`torch.cuda.set_device`), so the point's `device: cuda` (in its cache key, whatever the
    index) runs there; a CPU slot gets the cores divided between the workers."""
    import fcntl
    import threading

    owner = f"{os.getpid()}-{threading.get_ident()}"
    if owner in _claimed:
        return
    names = devices or ["cpu"] * workers
    slots.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        handle = open(slots / f"slot-{k}.lock", "w")  # noqa: SIM115 - held open: the lock is the claim
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _claimed[owner] = handle
        if name.startswith("cuda"):
            torch.cuda.set_device(torch.device(name))
        else:  # share the cores instead of oversubscribing them
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, len(names))))
        return
    raise RuntimeError(f"no free device slot among {names}: more workers than devices")


def _log_progress(logger, rows: list[dict], total: dict[float, int]) -> None:
    """After each finished point: points done / total for its budget, and the best loss so far."""
    c = rows[-1]["compute"]
    mine = [r for r in rows if r["compute"] == c]
    losses = [r["loss"] for r in mine if not r["error"]]
    best = f"best loss so far {min(losses):.4f}" if losses else "no finished point yet"
    logger.info(
        "C = %.2e: %d/%d points done (%d reused, %d failed), %s",
        c,
        len(mine),
        total[c],
        sum(r["reused"] for r in mine),
        sum(bool(r["error"]) for r in mine),
        best,
    )


def adaptive_rounds(
    config: SweepConfig,
    done: list[GridPoint],
    rows: list[dict],
    run_round: Callable[[list[GridPoint]], list[dict]],
    vocab_size: int,
    started: float,
    logger,
) -> list[str]:
    """Rounds of added points (scaling/adaptive.py's rules) until none is added, `max_rounds` or `max_minutes`;
    `done` and `rows` grow in place. Returns the last round's decisions and why the rounds stopped."""
    cfg = config.adaptive
    rounds = cfg.max_rounds if cfg.enabled else 0
    notes: list[str] = []
    for round_ in range(rounds):
        if cfg.max_minutes is not None and (elapsed := (time.time() - started) / 60) >= cfg.max_minutes:
            notes.append(f"stopped: the sweep has run {elapsed:.1f} min, max_minutes is {cfg.max_minutes:g}")
            break
        added, notes = next_points(
            rows, done, lambda c, n: config.point(vocab_size, c, n, window=False), cfg, config.sizes
        )
        for note in notes:
            logger.info("adaptive round %d: %s", round_ + 1, note)
        if not added:
            return notes
        done += added
        rows += run_round(added)
    else:
        if rounds:
            notes.append(f"stopped after max_rounds = {rounds} round{'s' if rounds > 1 else ''}")
    for note in notes[-1:]:
        logger.info("adaptive: %s", note)
    return notes


@flow(name="scaling-sweep", log_prints=True)
def scaling_sweep(
    tokenize_artifact: str,
    config: SweepConfig,
    dry_run: bool = False,
    force: bool = False,
    runner: RunnerConfig | None = None,
) -> str:
    """Train a (budget × size) grid, fit IsoFLOP and parametric laws; returns the artifact dir."""
    logger = get_run_logger()
    tok = ArtifactStore().find(tokenize_artifact, KEY_PARAMETERS["tokenize_artifact"], "tokenize_artifact")
    config = settled(config)
    vocab_size = json.loads((tok.path / "meta.json").read_text())["vocab_size"]
    points = config.grid(vocab_size)
    table = grid_table(points)
    for row in table:
        logger.info("grid: %s", "  ".join(f"{k}={v}" for k, v in row.items()))
    if config.adaptive.enabled and config.adaptive.max_rounds:
        logger.info(
            "adaptive: up to %d more rounds after this grid; rules: %s", config.adaptive.max_rounds, "; ".join(RULES)
        )
    if dry_run:
        return json.dumps(table)
    runnable = [p for p in points if p.skipped is None]

    def build(out_dir: Path, work_dir: Path) -> dict:
        rows, adaptive_notes = train_points(config, tok.path, runnable, runner or RunnerConfig(), work_dir, vocab_size)
        failed = [r for r in rows if r["error"]]
        runs = runs_table(rows, failed, out_dir)
        result = fit_runs(
            runs,
            out_dir,
            "both",
            config.predict_at,
            config.n_bootstrap,
            flops=config.flops_definition(),
            failed_points=len(failed),
        )
        lines = summary_lines(result) + [f"adaptive: {note}" for note in adaptive_notes[-1:]]
        publish_sweep(rows, [out_dir / name for name in result["plots"] if name.endswith(".png")], lines)
        return {
            "points": len(rows),
            "skipped": len(points) - len(runnable),
            "failed": len(failed),
            "reused": sum(r["reused"] for r in rows),
            "laws": lines,
            "adaptive": adaptive_notes,
            "plots": result["plots"],
        }

    artifact = run_stage(STAGE, config, build, inputs=[tok], force=force)
    return str(artifact.path)


def settled(config: SweepConfig) -> SweepConfig:
    """No `auto` enters the key, and no device index: a point runs on `cuda`, its worker's device."""
    config = config.with_devices()
    config = config.model_copy(update={"train": resolve_auto(config.train)})
    if config.devices and config.train.device.startswith("cuda"):
        config = config.model_copy(update={"train": config.train.model_copy(update={"device": "cuda"})})
    return config


def train_points(
    config: SweepConfig, tokens: Path, points: list[GridPoint], runner: RunnerConfig, work_dir: Path, vocab_size: int
) -> tuple[list[dict], list[str]]:
    """The grid's points, `concurrency` at once on the runner (one device slot each), then the adaptive rounds:
    (a row a point, the rounds' notes)."""
    logger = get_run_logger()
    started = time.time()
    total: dict[float, int] = {}
    done_rows: list[dict] = []
    where = runner.model_copy(update={"workers": config.concurrency})
    logger.info(
        "points on a %s runner, %d at once, devices: %s",
        where.kind,
        where.workers,
        ", ".join(config.devices) if config.devices else f"CPU cores split {where.workers} ways",
    )
    with make_task_runner(where) as task_runner:

        def run_round(round_points: list[GridPoint]) -> list[dict]:
            for p in round_points:
                total[p.compute] = total.get(p.compute, 0) + 1
            args = {
                "tokenize_artifact": str(tokens),
                "config": config,
                "sweep_started": started,
                "slots": work_dir / "device-slots",
                "store_home": ArtifactStore().home,
            }
            futures = {task_runner.submit(run_point, {**args, "point": p}): i for i, p in enumerate(round_points)}
            results: list[dict | None] = [None] * len(round_points)
            for future in as_completed(list(futures)):
                results[futures[future]] = row = future.result()
                done_rows.append(row)
                _log_progress(logger, done_rows, total)
            return results

        done, rows = list(points), run_round(points)
        notes = adaptive_rounds(config, done, rows, run_round, vocab_size, started, logger)
    return rows, notes


def runs_table(rows: list[dict], failed: list[dict], out_dir: Path):
    """`runs.csv` (a row a point, failed ones with their error) and the runs to fit: failed points left out, each
    on its nominal budget (a budget's points share C exactly) and exact tokens."""
    reused = sum(r["reused"] for r in rows)
    get_run_logger().info(
        "%d points: %d trained now, %d reused from an earlier run, %d failed",
        len(rows),
        len(rows) - reused - len(failed),
        reused,
        len(failed),
    )
    table = pd.DataFrame(rows)
    table.to_csv(out_dir / "runs.csv", index=False)
    if len(failed) == len(rows):
        raise RuntimeError(
            f"all {len(rows)} grid points failed; the first: {failed[0]['error']} (each point's error is in the log)"
        )
    return runs_from_table(table, "runs.csv")


def publish_sweep(rows: list[dict], plots: list[Path], lines: list[str]) -> None:
    """The laws in the log, the runs as a table and the plots with the laws in the Prefect UI."""
    logger = get_run_logger()
    for line in lines:
        logger.info(line)
    table = pd.DataFrame(rows)
    create_table_artifact(
        key="scaling-sweep-runs",
        table=table.astype(object).where(table.notna(), None).to_dict("records"),
        description="scaling-sweep: one row per grid point",
    )
    publish_figures(
        "scaling-sweep-fit",
        "scaling-sweep: fitted laws and plots",
        "\n\n".join(lines),
        plots,
    )


def _sweep_rows(path: Path) -> list[dict]:
    return [{"law": line} for line in manifest_summary(path)["laws"]]


def _sweep_headline(path: Path) -> list[str]:
    return manifest_summary(path)["laws"] + [f"plots: {path / 'isoflop.png'}, {path / 'parametric.png'}"]


# a pipeline file's `scaling_sweep:` section holds the sweep under `sweep:`
SPEC = StageSpec(
    scaling_sweep,
    ("scaling_sweep.sweep", "scaling_sweep"),
    _sweep_rows,
    "Scaling sweep on a tokenize artifact: --param tokenize_artifact=KEY.",
    SweepConfig,
    lambda: {"config": demo_config()["scaling_sweep"]["sweep"]},
    _sweep_headline,
)
