"""The `scaling-sweep` flow: one cached `pretrain` sub-flow per grid point, then the fits."""

from __future__ import annotations

import base64
import csv
import json
from pathlib import Path

import torch
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from flows.pretrain import pretrain
from flows.registry import KEY_PARAMETERS
from flows.stage import run_stage
from flows.store import ArtifactStore
from lm.train import resolve_auto
from scaling.adaptive import RULES, next_points
from scaling.grid import GridPoint, grid_table
from scaling.report import fit_runs, summary_lines
from scaling.runs import load_runs
from scaling.sweep import SweepConfig

STAGE = "scaling-sweep"


@task(name="grid-point", task_run_name="C={point.compute:.1e} N={point.shape.non_embedding_params}")
def run_point(tokenize_artifact: str, point: GridPoint, config: SweepConfig) -> dict:
    """Train one grid point as a pretrain sub-flow (cached on its own)."""
    path = Path(pretrain(tokenize_artifact, config.point_config(point)))
    summary = json.loads((path / "manifest.json").read_text())["summary"]
    return {"compute": point.compute, "compute_actual": summary["flops"], "parameters": summary["non_embedding_params"],
            "tokens": summary["tokens"], "loss": summary["final_val_loss"], "layers": point.shape.num_layers,
            "d_model": point.shape.d_model, "seed": point.seed, "pretrain_artifact": path.name}


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
        logger.info("adaptive: up to %d more rounds after this grid; rules: %s", config.adaptive.max_rounds, "; ".join(RULES))
    if dry_run:
        return json.dumps(table)
    runnable = [p for p in points if p.skipped is None]

    def build(out_dir: Path, work_dir: Path) -> dict:
        # share the cores between concurrent points instead of oversubscribing them
        torch.set_num_threads(max(1, torch.get_num_threads() // config.concurrency))
        with ThreadPoolTaskRunner(max_workers=config.concurrency) as runner:
            def run_round(points: list[GridPoint]) -> list[dict]:
                futures = [runner.submit(run_point, {"tokenize_artifact": str(tok.path), "point": p, "config": config}) for p in points]
                return [f.result() for f in futures]

            done, rows = list(runnable), run_round(runnable)
            for round_ in range(config.adaptive.max_rounds if config.adaptive.enabled else 0):
                added, notes = next_points(rows, done, lambda c, n: config.point(meta["vocab_size"], c, n, window=False), config.adaptive, config.sizes)
                for note in notes:
                    logger.info("adaptive round %d: %s", round_ + 1, note)
                if not added:
                    break
                done += added
                rows += run_round(added)
        with open(out_dir / "runs.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        # fit on the nominal budget (points of one budget share C exactly) and exact tokens
        runs = load_runs(out_dir / "runs.csv")
        result = fit_runs(runs, out_dir, "both", config.predict_at, config.n_bootstrap, flops=config.flops_definition())
        lines = summary_lines(result)
        for line in lines:
            logger.info(line)
        create_table_artifact(key="scaling-sweep-runs", table=rows, description="scaling-sweep: one row per grid point")
        png = base64.b64encode((out_dir / "isoflop.png").read_bytes()).decode()
        create_markdown_artifact(key="scaling-sweep-fit", markdown="\n\n".join(lines) + f"\n\n![isoflop](data:image/png;base64,{png})",
                                 description="scaling-sweep: fitted laws")
        return {"points": len(rows), "skipped": len(points) - len(runnable), "laws": lines, "plots": result["plots"]}

    artifact = run_stage(STAGE, config, build, inputs=[tok], force=force)
    return str(artifact.path)
