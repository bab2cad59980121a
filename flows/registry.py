"""The stage registry: it collects the stages, each declared in its own flow module.

A stage is one module, `flows/<stage>.py`: its flow, and a `SPEC` (StageSpec) beside it saying
where a pipeline file keeps its settings, its settings model, its summary rows and headline,
and its `default` deployment's parameters. The CLI, `lmforge serve` (deployments), the
pipeline's summary, the docs' settings reference and the cache keys all read the specs
through `STAGES`. Adding a stage is its flow module plus one line in `STAGE_MODULES`.

A flow module imports its library code (torch, TRL), so `STAGES[name]` imports only that
stage's module, when it is first asked for: `lmforge ls` or `lmforge --help` import none.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# stage name (the artifact folder, the Prefect flow name, the CLI subcommand) → its flow module, the root of
# its code fingerprint in the cache key (flows/fingerprint.py)
STAGE_MODULES: dict[str, str] = {
    "clean-data": "flows.clean_data",
    "quality-model": "flows.quality_model",
    "tokenize": "flows.tokenization",
    "pretrain": "flows.pretrain",
    "scaling-sweep": "flows.scaling_sweep",
    "grpo": "flows.grpo",
    "sft": "flows.sft",
    "evaluate": "flows.evaluate",
    "pipeline": "flows.pipeline",
}

# Flow parameters that take artifact keys, and the stages whose artifacts each accepts (the CLI,
# `lmforge run`, the pipeline and deployments' flows all check keys against this); `checkpoint`
# also takes a Hugging Face model folder (flows/checkpoints.py).
KEY_PARAMETERS: dict[str, tuple[str, ...]] = {
    "clean_artifact": ("clean-data",),
    "tokenize_artifact": ("tokenize",),
    "checkpoint": ("pretrain", "sft", "grpo"),
    "checkpoints": ("pretrain", "sft", "grpo"),
}

# the top-level sections of a pipeline file (flows/pipeline.PipelineConfig; a test keeps the two equal): a file
# with some of them but not a stage's own is a pipeline file without that stage, not that stage's settings
PIPELINE_SECTIONS = frozenset(
    {"quality_model", "clean_data", "tokenize", "pretrain", "scaling_sweep", "post_training", "runner"}
)
# every top-level section lmforge reads: a pipeline file's, and a stage file's own (`sft:`, `grpo:`: the stage's
# name), so that `lmforge grpo -c sft.yaml` says the file has no grpo section
CONFIG_SECTIONS = PIPELINE_SECTIONS | {name.replace("-", "_") for name in STAGE_MODULES if name != "pipeline"}


@dataclass(frozen=True)
class StageSpec:
    """What the rest of lmforge knows of a stage, declared beside its flow."""

    flow: Any  # the Prefect flow; its name is the stage's
    sections: tuple[str, ...]  # where `-c FILE` finds this stage's settings (dotted paths, first present wins)
    summary_rows: Callable[[Path], list[dict]]  # an artifact dir → rows of its summary table
    description: str
    settings: type | None = None  # its settings model: the command's flags and the docs' reference come from it
    default_parameters: Callable[[], dict[str, Any]] = field(default=dict)  # the `default` deployment's parameters
    headline: Callable[[Path], list[str]] | None = None  # its lines in the pipeline's summary; None: the summary table

    @property
    def name(self) -> str:
        return self.flow.name


class Stages(Mapping[str, StageSpec]):
    """`STAGES[name]`: the stage's spec, its flow module imported on first use; names alone import nothing."""

    def __getitem__(self, name: str) -> StageSpec:
        if name not in STAGE_MODULES:
            raise KeyError(name)
        spec = importlib.import_module(STAGE_MODULES[name]).SPEC
        assert spec.name == name, f"{STAGE_MODULES[name]}.SPEC is the {spec.name!r} stage, registered as {name!r}"
        return spec

    def __iter__(self) -> Iterator[str]:
        return iter(STAGE_MODULES)

    def __len__(self) -> int:
        return len(STAGE_MODULES)


STAGES = Stages()
