"""What every post-training stage's settings share: the task, its completion limit, the generation engine."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from common.configfile import ConfigError
from rl.generation import resolve_engine
from rl.harness_task import HarnessTask
from rl.rewards import RewardError
from rl.tasks import Task, get_task


class TaskSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str | dict[str, Any] = Field(
        "addition",
        description="a built-in task name, a task file (lmforge's or lm-eval's), a folder of lm-eval task files, an "
        "lm-eval task name, or the task's mapping inline",
    )
    include_path: list[str] = Field(
        default_factory=list, description="folders of lm-eval task files whose task names `task` may use"
    )
    max_completion_tokens: int | None = Field(None, ge=1, description="generation limit; None: the task's")
    engine: Literal["auto", "vllm", "transformers"] = "auto"
    _task: Task | HarnessTask | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _load_task(self) -> TaskSettings:
        try:
            # unknown tasks, bad task files, rewards that do not import fail at load; and for lmforge's tasks the
            # test split's rows (files, columns, templates, an empty split) and each reward on one gold answer
            task = self.load_task()
            if isinstance(task, Task):
                task.check_rewards()
        except (ConfigError, RewardError) as e:
            raise ValueError(str(e)) from None
        resolve_engine(self.engine)  # 'vllm' without vLLM installed fails at load
        return self

    def load_task(self) -> Task | HarnessTask:
        """The loaded task, with this stage's completion limit (evaluation uses it too)."""
        if self._task is None:
            task = get_task(self.task, include_path=self.include_path)
            if self.max_completion_tokens is not None:
                task = task.with_max_completion_tokens(self.max_completion_tokens)
            self._task = task
        return self._task
