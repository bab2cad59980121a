"""What every post-training stage's settings share: the task, its completion limit, the generation engine."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from lm.configfile import ConfigError
from rl.generation import resolve_engine
from rl.tasks import Task, get_task


class TaskSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str | dict[str, Any] = Field(
        "addition", description="a built-in task name, a task file (YAML), or the task's mapping inline"
    )
    max_completion_tokens: int | None = Field(None, ge=1, description="generation limit; None: the task's")
    engine: Literal["auto", "vllm", "transformers"] = "auto"
    _task: Task | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _load_task(self) -> TaskSettings:
        try:
            self.load_task()  # unknown tasks, bad task files and rewards that do not import fail at load
        except ConfigError as e:
            raise ValueError(str(e)) from None
        resolve_engine(self.engine)  # 'vllm' without vLLM installed fails at load
        return self

    def load_task(self) -> Task:
        """The loaded task, with this stage's completion limit (evaluation uses it too)."""
        if self._task is None:
            task = get_task(self.task)
            if self.max_completion_tokens is not None:
                task = replace(
                    task, spec=task.spec.model_copy(update={"max_completion_tokens": self.max_completion_tokens})
                )
            self._task = task
        return self._task
