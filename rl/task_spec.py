"""What a task file may say: its schema (pydantic), validated when the task loads, before any model is."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rl.rewards import RewardSpec


class DataSpec(BaseModel):
    """Where the rows come from: a train and/or test file, one file split by hash, or a generator."""

    model_config = ConfigDict(extra="forbid")

    train: str | None = None
    test: str | None = None
    path: str | None = None
    test_fraction: float = Field(
        0.1, gt=0, lt=1, description="with `path`: the share of rows (by a hash of the row) held out"
    )
    generator: Literal["addition"] | None = None
    teacher_errors: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="with `generator`: the share of rows whose `teacher` column (a demonstration a task's "
        "`completion` may train on) holds a slip: the answer with one digit wrong",
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        sources = [bool(self.train or self.test), bool(self.path), bool(self.generator)]
        if sum(sources) != 1:
            raise ValueError("give exactly one of: train/test files, one `path` (+ test_fraction), or a `generator`")
        if self.teacher_errors and not self.generator:
            raise ValueError("teacher_errors applies to generated data (`generator`) only")
        return self


class SuccessSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reward: str
    at_least: float = 1.0


class TaskSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    data: DataSpec
    prompt: str | None = Field(
        None, description="a format string ({column}) or a Jinja template ({{ column }}) over a row"
    )
    messages: str | None = Field(None, description="instead of `prompt`: the column that holds chat messages")
    answer_field: str = "answer"
    completion: str | None = Field(
        None, description="what `sft` trains the model to write: a template over the row; default: the answer"
    )
    answer_template: str | None = Field(
        None, description="instead of answer_field: a template over the row (lm-eval's doc_to_target)"
    )
    stop: list[str] = Field(
        default_factory=list, description="completions are cut at the first of these before scoring (lm-eval's `until`)"
    )
    answer_pattern: str | None = Field(
        None, description="a regex on the answer field whose group 1 is the answer (GSM8K: '####\\s*(.+)')"
    )
    chat_template: bool = Field(
        False, description="wrap the prompt in the model's chat template (with `system`, if given)"
    )
    system: str | None = None
    shots: int = Field(
        0, ge=0, description="the first N train rows, solved, put before each prompt (they are not also problems)"
    )
    rewards: list[RewardSpec] = Field(default_factory=lambda: [RewardSpec(kind="exact")], min_length=1)
    success: SuccessSpec | None = Field(None, description="what counts as correct; default: the first reward at >= 1.0")
    max_completion_tokens: int = Field(64, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _lm_eval_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and "num_fewshot" in data:
            raise ValueError(
                "num_fewshot is lm-eval's (shots sampled per document with its seed); an lmforge task puts the first "
                "N solved train rows before each prompt with `shots: N` (an lm-eval task file samples them)"
            )
        return data

    @model_validator(mode="after")
    def _check(self) -> TaskSpec:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give one of `prompt` (a template) or `messages` (a column of chat messages)")
        names = [r.label for r in self.rewards]
        if len(set(names)) != len(names):
            raise ValueError(f"reward names must differ (set `name:`): {names}")
        if self.success is not None and self.success.reward not in names:
            raise ValueError(f"success.reward {self.success.reward!r} is not one of the rewards {names}")
        return self
