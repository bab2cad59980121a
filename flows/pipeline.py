"""The `pipeline` flow: [quality-model →] clean-data → tokenize → pretrain, scaling-sweep off
tokenize, and post-training on a task (sft → grpo → evaluate).

Each stage is a sub-flow with its own cached artifact, so a rerun of a finished pipeline
is all cache hits, and changing one stage's config recomputes that stage and what follows.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field, model_validator

from filters.config import CleanConfig
from filters.quality_classifier import QualityModelConfig
from flows.clean_data import clean_data
from flows.config import demo_config
from flows.evaluate import evaluate
from flows.grpo import grpo
from flows.pretrain import pretrain
from flows.quality_model import quality_model
from flows.registry import StageSpec
from flows.runners import RunnerConfig
from flows.scaling_sweep import scaling_sweep
from flows.sft import sft
from flows.store import ArtifactStore
from flows.tokenization import tokenize
from lm.corpus import TokenizeConfig
from lm.train import PretrainConfig
from rl.evaluate import EvalConfig
from rl.grpo import GRPOSettings
from rl.sft import SFTSettings
from rl.tasks import get_task
from scaling.sweep import SweepConfig


class PostTrainingConfig(BaseModel):
    """Post-training on one task: [pretrain the task's own small model →] sft → grpo → evaluate.

    `checkpoint`: start from that (artifact or HF folder); else a small model is pretrained
    on the task's generated corpus first (e.g. addition). `task` is every stage's task unless
    a stage's section names its own. `evaluate` compares every checkpoint of the chain."""

    model_config = ConfigDict(extra="forbid")

    task: str | dict[str, Any] = "addition"
    checkpoint: str | None = None
    tokenize: TokenizeConfig = TokenizeConfig(vocab_size=257, val_fraction=0.02)  # 257: bytes + EOT, character level
    # the recipe is the config file's (configs/pipeline-demo.yaml holds the demo's), not a default here
    pretrain: PretrainConfig | None = Field(
        None, description="without a checkpoint: the small model pretrained on the task's corpus first"
    )
    sft: SFTSettings | None = None
    grpo: GRPOSettings | None = None
    evaluate: EvalConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _branch_task(cls, data: Any) -> Any:
        """The branch's task goes into each stage section that does not name one (before they validate)."""
        if isinstance(data, dict) and "task" in data:
            data = {
                **data,
                **{
                    k: {"task": data["task"], **data[k]}
                    for k in ("sft", "grpo", "evaluate")
                    if isinstance(data.get(k), dict)
                },
            }
        return data

    @model_validator(mode="after")
    def _a_model_to_tune(self) -> PostTrainingConfig:
        if self.checkpoint is None and self.pretrain is None:
            raise ValueError("give a `checkpoint` to tune, or `pretrain:` settings for a small model of the task")
        return self


class ScalingBranchConfig(BaseModel):
    """A scaling sweep off the pipeline's corpus. `tokenize`: a tokenizer of its own (a small
    vocabulary keeps the embedding and output layer from dominating tiny models); None: the
    pipeline's tokenize artifact."""

    model_config = ConfigDict(extra="forbid")

    tokenize: TokenizeConfig | None = None
    sweep: SweepConfig


# `clean_data.classifier.model: quality-model` names the pipeline's own quality_model stage
OWN_QUALITY_MODEL = "quality-model"


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quality_model: QualityModelConfig | None = None  # trained first when clean_data's classifier names it
    clean_data: CleanConfig
    tokenize: TokenizeConfig = TokenizeConfig()
    pretrain: PretrainConfig = PretrainConfig()
    scaling_sweep: ScalingBranchConfig | None = None  # optional branch off the clean corpus
    post_training: PostTrainingConfig | None = None
    runner: RunnerConfig = RunnerConfig()


@flow(name="pipeline", log_prints=True)
def pipeline(config: PipelineConfig) -> dict:
    """Run every stage in order (each cached on its own); returns each stage's artifact dir."""
    logger = get_run_logger()
    out: dict[str, str] = {}
    clean_cfg = config.clean_data
    if config.quality_model is not None:
        out["quality-model"] = quality_model(config.quality_model)
        if clean_cfg.classifier is not None and clean_cfg.classifier.model == OWN_QUALITY_MODEL:
            clean_cfg = clean_cfg.model_copy(
                update={"classifier": clean_cfg.classifier.model_copy(update={"model": out["quality-model"]})}
            )
    out["clean-data"] = clean_data(clean_cfg, config.runner)
    out["tokenize"] = tokenize(config.tokenize, clean_artifact=out["clean-data"], runner=config.runner)
    out["pretrain"] = pretrain(out["tokenize"], config.pretrain)
    if (branch := config.scaling_sweep) is not None:
        if branch.tokenize is not None:
            out["sweep-tokenize"] = tokenize(branch.tokenize, clean_artifact=out["clean-data"], runner=config.runner)
        out["scaling-sweep"] = scaling_sweep(
            out.get("sweep-tokenize", out["tokenize"]), branch.sweep, runner=config.runner
        )
    if config.post_training is not None:
        out.update(post_training_branch(config.post_training))
    for stage, path in out.items():
        logger.info("%s: %s", stage, path)
    return out


def post_training_branch(cfg: PostTrainingConfig) -> dict[str, str]:
    out: dict[str, str] = {}
    checkpoint = cfg.checkpoint
    if checkpoint is None:
        task = get_task(cfg.task)
        corpus = task.write_pretraining_corpus(ArtifactStore().home / "data" / f"{task.name}.txt")
        out["rl-tokenize"] = tokenize(cfg.tokenize.model_copy(update={"inputs": [str(corpus)]}))
        out["rl-pretrain"] = checkpoint = pretrain(out["rl-tokenize"], cfg.pretrain)
    chain = [checkpoint]
    if cfg.sft is not None:
        out["sft"] = sft(chain[-1], cfg.sft)
        chain.append(out["sft"])
    if cfg.grpo is not None:
        out["grpo"] = grpo(chain[-1], cfg.grpo)
        chain.append(out["grpo"])
    if cfg.evaluate is not None:
        out["evaluate"] = evaluate(chain, cfg.evaluate)
    return out


SPEC = StageSpec(
    pipeline, (), lambda path: [], "The whole demo pipeline.", default_parameters=lambda: {"config": demo_config()}
)
