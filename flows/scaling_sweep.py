"""The `scaling-sweep` flow: one cached `pretrain` sub-flow per grid point, then the fits."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import torch
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.pretrain import pretrain
from flows.registry import KEY_PARAMETERS
from flows.stage import run_stage
from flows.store import ArtifactStore
from flows.ui import publish_figures
from lm.train import resolve_auto
from scaling.adaptive import RULES, next_points
from scaling.grid import GridPoint, grid_table
from scaling.report import fit_runs, summary_lines
from scaling.runs import runs_from_table
from scaling.sweep import SweepConfig

STAGE = "scaling-sweep"


@task(name="grid-point", task_run_name="C={point.compute:.1e} N={point.shape.non_embedding_params}")
def run_point(tokenize_artifact: str, point: GridPoint, config: SweepConfig, sweep_started: float) -> dict:
    """Train one grid point as a pretrain sub-flow (cached on its own). A point that fails
    (diverged, out of memory) is a row with its error, left out of the fit, not the sweep's end."""
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


@flow(name="scaling-sweep", log_prints=True)
def scaling_sweep(tokenize_artifact: str, config: SweepConfig, dry_run: bool = False, force: bool = False) -> str:
    """Train a (budget × size) grid, fit IsoFLOP and parametric laws; returns the artifact dir."""
    logger = get_run_logger()
    tok = ArtifactStore().find(tokenize_artifact, KEY_PARAMETERS["tokenize_artifact"], "tokenize_artifact")
    config = config.model_copy(update={"train": resolve_auto(config.train)})  # no `auto` enters a key
    meta = json.loads((tok.path / "meta.json").read_text())
    points = config.grid(meta["vocab_size"])
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
        # share the cores between concurrent points instead of oversubscribing them
        torch.set_num_threads(max(1, torch.get_num_threads() // config.concurrency))
        started = time.time()
        total: dict[float, int] = {}
        done_rows: list[dict] = []
        with ThreadPoolTaskRunner(max_workers=config.concurrency) as runner:

            def run_round(points: list[GridPoint]) -> list[dict]:
                for p in points:
                    total[p.compute] = total.get(p.compute, 0) + 1
                futures = {
                    runner.submit(
                        run_point,
                        {"tokenize_artifact": str(tok.path), "point": p, "config": config, "sweep_started": started},
                    ): i
                    for i, p in enumerate(points)
                }
                results: list[dict | None] = [None] * len(points)
                for future in as_completed(list(futures)):
                    results[futures[future]] = row = future.result()
                    done_rows.append(row)
                    _log_progress(logger, done_rows, total)
                return results

            done, rows = list(runnable), run_round(runnable)
            for round_ in range(config.adaptive.max_rounds if config.adaptive.enabled else 0):
                added, notes = next_points(
                    rows,
                    done,
                    lambda c, n: config.point(meta["vocab_size"], c, n, window=False),
                    config.adaptive,
                    config.sizes,
                )
                for note in notes:
                    logger.info("adaptive round %d: %s", round_ + 1, note)
                if not added:
                    break
                done += added
                rows += run_round(added)
        reused, failed = sum(r["reused"] for r in rows), [r for r in rows if r["error"]]
        logger.info(
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
                f"all {len(rows)} grid points failed; the first: {failed[0]['error']} (each point's error is in "
                "the log)"
            )
        # fit on the nominal budget (points of one budget share C exactly) and exact tokens; failed points left out
        runs = runs_from_table(table, "runs.csv")
        result = fit_runs(
            runs,
            out_dir,
            "both",
            config.predict_at,
            config.n_bootstrap,
            flops=config.flops_definition(),
            failed_points=len(failed),
        )
        lines = summary_lines(result)
        for line in lines:
            logger.info(line)
        create_table_artifact(
            key="scaling-sweep-runs",
            table=table.astype(object).where(table.notna(), None).to_dict("records"),
            description="scaling-sweep: one row per grid point",
        )
        publish_figures(
            "scaling-sweep-fit",
            "scaling-sweep: fitted laws and plots",
            "\n\n".join(lines),
            [out_dir / name for name in result["plots"] if name.endswith(".png")],
        )
        return {
            "points": len(rows),
            "skipped": len(points) - len(runnable),
            "failed": len(failed),
            "reused": reused,
            "laws": lines,
            "plots": result["plots"],
        }

    artifact = run_stage(STAGE, config, build, inputs=[tok], force=force)
    return str(artifact.path)
