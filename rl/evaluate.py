"""Evaluation of a loaded policy on an lmforge task's split: accuracy, pass@k, every reward's mean, lengths.

(An lm-evaluation-harness task is scored by the harness itself: lm/harness.py; `EvalConfig` holds the
settings of both.)

Greedy decoding gives the accuracy a checkpoint is compared by; sampling (temperature 1)
gives `samples` completions per prompt, their mean accuracy, and pass@k by the unbiased
estimator of Chen et al. (2021). A policy is a `vllm.LLM` or a (model, left-padding
tokenizer) pair, as `rl.generation` loads them; GRPO evaluates with the trainer's own
engine before and after training (a vLLM engine start costs ~20 s on a CPU). The result
says which engine produced it.
"""

from __future__ import annotations

from math import comb
from pathlib import Path
from typing import Literal

from pydantic import Field

from lm.harness import HarnessTasks, load_harness_tasks
from rl.generation import ENGINES, policy_tokenizer, resolve_engine
from rl.settings import TaskSettings
from rl.tasks import SPLITS, Task, is_harness_reference


class EvalConfig(TaskSettings):
    """The `evaluate` stage: checkpoints × one lmforge task's split, or × lm-eval tasks (scored by the harness)."""

    split: Literal[SPLITS] = "test"  # type: ignore[valid-type]
    limit: int | None = Field(
        1000, ge=1, description="the first N rows of the split (lm-eval tasks: of each task, as lm_eval's --limit)"
    )
    samples: int = Field(8, ge=1, description="sampled completions per prompt at temperature 1 (pass@k up to this k)")
    seed: int = 0
    # lm-eval tasks only (lm_eval's flags of the same names)
    batch_size: int = Field(16, ge=1, description="lm-eval tasks: requests per forward pass (lm_eval's --batch_size)")
    num_fewshot: int | None = Field(
        None, ge=0, description="lm-eval tasks: override the tasks' num_fewshot (lm_eval's --num_fewshot)"
    )
    apply_chat_template: bool = Field(
        False, description="lm-eval tasks: prompts through the model's chat template (lm_eval's --apply_chat_template)"
    )

    def load_task(self) -> Task | HarnessTasks:  # type: ignore[override]
        """An lmforge task, or the lm-eval tasks a harness reference resolves to (a file, folder, name, suite)."""
        if is_harness_reference(self.task):
            if self._task is None:
                self._task = load_harness_tasks(self.task, self.include_path)  # type: ignore[arg-type, assignment]
            return self._task  # type: ignore[return-value]
        return super().load_task()  # type: ignore[return-value]


def pass_at_k(n: int, c: int, k: int) -> float:
    """P(at least one of k draws without replacement from n samples, c of them correct, is correct)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per prompt, not {n}")
    return 1.0 if n - c < k else 1.0 - comb(n - c, k) / comb(n, k)


def prompt_texts(task: Task, rows: list[dict], tokenizer) -> list[str]:
    """Chat prompts through the model's chat template (generation prompt added); text prompts as they are."""
    if rows and isinstance(rows[0]["prompt"], list):
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError(f"task {task.name} has chat prompts but the model's tokenizer has no chat template")
        return [tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True) for r in rows]
    return [r["prompt"] for r in rows]


def score(task: Task, rows: list[dict], completions: list[str], lengths: list[int], samples: int = 1) -> dict:
    """Metrics of `samples` completions per row (row-major): accuracy, per-reward means, pass@k for k ≤ samples."""
    expanded = [r for r in rows for _ in range(samples)]
    per = task.score([r["prompt"] for r in expanded], completions, expanded)
    success = task.success
    correct = [v >= success.at_least for v in per[success.reward]]
    n = len(completions)
    out = {
        "n": len(rows),
        "samples_per_prompt": samples,
        "accuracy": sum(correct) / n,
        "mean_reward": sum(per["total"]) / n,
        **{f"reward/{name}": sum(v) / n for name, v in per.items() if name != "total"},
        "format_rate": sum(v > 0 for v in per["total"]) / n,
        "mean_completion_tokens": sum(lengths) / n,
    }
    if samples > 1:
        per_row = [sum(correct[i * samples : (i + 1) * samples]) for i in range(len(rows))]
        for k in sorted({k for k in (1, 2, 4, 8) if k <= samples} | {samples}):
            out[f"pass@{k}"] = sum(pass_at_k(samples, c, k) for c in per_row) / len(rows)
    out["examples"] = [
        {"prompt": r["prompt"], "completion": c, "answer": r["answer"], "reward": t}
        for r, c, t in list(zip(expanded, completions, per["total"]))[: 5 * samples : samples]
    ]
    return out


def evaluate(
    policy, engine: str, task: Task, split: str = "test", limit: int | None = None, seed: int = 0, samples: int = 1
) -> dict[str, dict]:
    """{"greedy": metrics, "sampled": metrics} of a loaded policy on the first `limit` rows of `split`."""
    generate = ENGINES[engine][1]
    rows = task.load(split)[:limit]
    prompts = prompt_texts(task, rows, policy_tokenizer(policy, engine))
    results = {}
    for mode, temperature, n in (("greedy", 0.0, 1), ("sampled", 1.0, samples)):
        completions, lengths = generate(policy, prompts, task.max_completion_tokens, temperature, seed, n=n)
        results[mode] = {
            "engine": engine,
            "split": split,
            "temperature": temperature,
            **score(task, rows, completions, lengths, n),
        }
    return results


def evaluate_model_dir(
    model_dir: Path,
    task: Task,
    split: str = "test",
    limit: int | None = None,
    seed: int = 0,
    engine: str = "auto",
    samples: int = 1,
) -> dict[str, dict]:
    """Load a Hugging Face model folder with `engine` and evaluate it."""
    engine = resolve_engine(engine)
    return evaluate(ENGINES[engine][0](Path(model_dir)), engine, task, split, limit, seed, samples)
