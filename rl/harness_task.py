"""An lm-evaluation-harness `generate_until` task as a post-training task for `sft` and `grpo`.

Nothing of the task is re-implemented: the harness builds every prompt (`fewshot_context`, its
few-shot sampler seeded as `lm_eval` seeds it, so a test prompt is the prompt `lm_eval` scores),
the SFT completion is what the harness writes after a few-shot example (`target_delimiter` +
`doc_to_target`), and the GRPO reward is the task's own metric: the completion cut at the task's
`until` strings (the harness's post-processing), passed through its first filter chain, scored by
its `process_results`. Rows carry only the document's split and index; the reward looks the
document up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from common.configfile import ConfigError
from lm.harness import HarnessTasks
from rl.rewards import _text, checked
from rl.task_spec import SuccessSpec
from rl.tasks import SPLITS, Reward

DEFAULT_MAX_GEN_TOKS = 256  # lm-eval's own default for generate_until


@dataclass
class HarnessTask:
    """The one leaf task of an lm-eval reference, with the interface of `rl.tasks.Task`."""

    harness: HarnessTasks
    completion_limit: int | None = None
    _rows: dict[str, list[dict]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if len(self.harness.tasks) != 1:
            raise ConfigError(
                f"{self.harness.reference}: sft and grpo take one lm-eval task, this names "
                f"{len(self.harness.tasks)} ({', '.join(self.harness.tasks)})"
            )
        if self.task.OUTPUT_TYPE != "generate_until":
            raise ConfigError(
                f"{self.harness.reference}: sft and grpo need a generate_until task (a completion to train on and "
                f"score), not {self.task.OUTPUT_TYPE}; `evaluate` scores it"
            )

    @property
    def task(self):
        return next(iter(self.harness.tasks.values()))

    @property
    def name(self) -> str:
        return next(iter(self.harness.tasks))

    @property
    def generation_kwargs(self) -> dict:
        return dict(self.task.config.generation_kwargs or {})

    @property
    def max_completion_tokens(self) -> int:
        return self.completion_limit or int(self.generation_kwargs.get("max_gen_toks", DEFAULT_MAX_GEN_TOKS))

    def with_max_completion_tokens(self, n: int) -> HarnessTask:
        return HarnessTask(self.harness, n)

    @property
    def stops(self) -> list[str]:
        until = self.generation_kwargs.get("until") or []
        return [until] if isinstance(until, str) else list(until)

    # --- rows --------------------------------------------------------------------------------------
    def docs(self, split: str):
        t = self.task
        if split == "test":
            return t.eval_docs
        docs = t.training_docs() if t.has_training_docs() else t.fewshot_docs()
        if docs is None:
            raise ConfigError(
                f"{self.harness.reference}: task {self.name} has no training_split (or fewshot_split) to train on"
            )
        return docs

    def load(self, split: str) -> list[dict]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        if split not in self._rows:
            self._rows[split] = self._build_rows(split)
        if not self._rows[split]:
            raise ConfigError(f"{self.harness.reference}: task {self.name}: the {split} split has no documents")
        return self._rows[split]

    def _build_rows(self, split: str) -> list[dict]:
        from lm_eval.defaults import DEFAULT_OTHER_SEED

        t = self.task
        t.set_fewshot_seed(seed=DEFAULT_OTHER_SEED)  # as simple_evaluate seeds it: the same shots per document
        shots = t.config.num_fewshot or 0
        delimiter = t.config.target_delimiter
        rows = []
        for i, doc in enumerate(self.docs(split)):
            target = t.doc_to_target(doc)
            if isinstance(target, list):
                target = target[0]  # several gold answers: SFT learns the first, the metric accepts any
            rows.append(
                {
                    "prompt": t.fewshot_context(doc, num_fewshot=shots, gen_prefix=t.doc_to_prefix(doc)),
                    "answer": str(target),
                    "target": f"{delimiter}{target}",
                    "doc_split": split,
                    "doc_index": i,
                }
            )
        return rows

    def completion(self, row: dict) -> str:
        return row["target"]

    def files(self) -> list[Path]:
        return self.harness.files()

    def write_pretraining_corpus(self, path: Path) -> Path:
        raise ConfigError(f"task {self.name} has no generated data to pretrain on: give the pipeline a checkpoint")

    # --- scoring -----------------------------------------------------------------------------------
    @property
    def metric(self) -> tuple[str, str]:
        """(filter chain, metric) whose value is the reward: the task's first of each."""
        filters = self.task._filters
        metrics = list(self.task._metric_fn_list)
        if not metrics:
            raise ConfigError(f"{self.harness.reference}: task {self.name} has no metric to reward")
        return filters[0].name, metrics[0]

    @cached_property
    def rewards(self) -> list[Reward]:
        chain, metric = self.metric
        return [Reward(f"{metric}/{chain}", 1.0, checked(f"{metric}/{chain}", self._reward_fn()))]

    @property
    def success(self) -> SuccessSpec:
        return SuccessSpec(reward=self.rewards[0].name, at_least=1.0)

    def _reward_fn(self) -> Callable[..., list[float | None]]:
        from lm_eval.models.utils import postprocess_generated_text

        task, (chain_name, metric) = self.task, self.metric
        chain = next(f for f in task._filters if f.name == chain_name)
        stops = self.stops

        def task_metric(prompts, completions, doc_split, doc_index, **_columns) -> list[float | None]:
            docs = [self.docs(s)[int(i)] for s, i in zip(doc_split, doc_index)]
            texts = [postprocess_generated_text(_text(c), stops, None) for c in completions]
            responses: list = [[t] for t in texts]
            for f in chain.filters:
                responses = list(f().apply(responses, docs))
            return [float(task.process_results(d, [r])[metric]) for d, r in zip(docs, responses)]

        return task_metric

    def score(self, prompts: list, completions: list[str], rows: list[dict]) -> dict[str, list[float]]:
        reward = self.rewards[0]
        columns = {"doc_split": [r["doc_split"] for r in rows], "doc_index": [r["doc_index"] for r in rows]}
        values = [float(v or 0.0) for v in reward.fn(prompts, completions, **columns)]
        return {reward.name: values, "total": values}
