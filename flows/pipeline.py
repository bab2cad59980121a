"""The `pipeline` flow: clean-data → tokenize → pretrain (→ grpo), scaling-sweep off tokenize.

Each stage is a sub-flow with its own cached artifact, so a rerun of a finished pipeline
is all cache hits, and changing one stage's config recomputes that stage and what follows.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict

from filters.config import CleanConfig
from flows.clean_data import clean_data
from flows.pretrain import pretrain
from flows.runners import RunnerConfig
from flows.scaling_sweep import scaling_sweep
from flows.tokenize import tokenize
from lm.corpus import TokenizeConfig
from lm.train import PretrainConfig
from scaling.sweep import SweepConfig


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clean_data: CleanConfig
    tokenize: TokenizeConfig = TokenizeConfig()
    pretrain: PretrainConfig = PretrainConfig()
    scaling_sweep: SweepConfig | None = None  # optional branch off the tokenize artifact
    runner: RunnerConfig = RunnerConfig()


@flow(name="pipeline", log_prints=True)
def pipeline(config: PipelineConfig) -> dict:
    """Run every stage in order (each cached on its own); returns each stage's artifact dir."""
    logger = get_run_logger()
    out: dict[str, str] = {}
    out["clean-data"] = clean_data(config.clean_data, config.runner)
    out["tokenize"] = tokenize(config.tokenize, clean_artifact=out["clean-data"])
    out["pretrain"] = pretrain(out["tokenize"], config.pretrain)
    if config.scaling_sweep is not None:
        out["scaling-sweep"] = scaling_sweep(out["tokenize"], config.scaling_sweep)
    for stage, path in out.items():
        logger.info("%s: %s", stage, path)
    return out


def pipeline_summary(out: dict[str, str]) -> dict:
    """What a person wants to read at the end: the headline number of every stage."""
    summary: dict = {}
    stats = json.loads((Path(out["clean-data"]) / "stats.json").read_text())
    summary["clean-data"] = stats
    summary["tokenize"] = json.loads((Path(out["tokenize"]) / "meta.json").read_text())
    summary["pretrain"] = json.loads((Path(out["pretrain"]) / "manifest.json").read_text())["summary"]
    if "scaling-sweep" in out:
        summary["scaling-sweep"] = json.loads((Path(out["scaling-sweep"]) / "manifest.json").read_text())["summary"]
    return summary
