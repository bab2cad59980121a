"""Evaluation of a loaded policy on an lmforge task's split: accuracy, pass@k, every reward's mean, lengths.

(An lm-evaluation-harness task is scored by the harness itself: lm/harness.py; `EvalConfig` holds the
settings of both.)

Greedy decoding gives the accuracy a checkpoint is compared by; sampling (temperature 1)
gives `samples` completions per prompt, their mean accuracy, and pass@k by the unbiased
estimator of Chen et al. (2021). Every accuracy carries its 95% interval (Wilson's for greedy
decoding; over rows for sampling, whose completions of one prompt are not independent), and
`compare_checkpoints` gives each checkpoint's paired difference to the one before it on the
same rows, with its interval, so a lift within noise is said to be. A policy is a `vllm.LLM`
or a (model, left-padding tokenizer) pair, as `rl.generation` loads them; GRPO evaluates with the trainer's own
engine before and after training (a vLLM engine start costs ~20 s on a CPU). The result
says which engine produced it.
"""

from __future__ import annotations

import math
from math import comb
from pathlib import Path
from typing import Literal

from pydantic import Field

from lm.harness import HarnessTasks, load_harness_tasks
from rl.generation import ENGINES, encode_prompts, policy_tokenizer, resolve_engine
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


Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: two-sided 95% intervals


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (sound at 0/n and n/n, where the
    normal approximation collapses to a point)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(values: list[float], z: float = Z95) -> tuple[float, float]:
    """Mean ± z standard errors of per-row values (a row's samples are not independent draws,
    so sampled accuracy is a mean over rows, not a binomial over completions)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:  # one row says nothing about its spread: an interval as wide as the values can be
        return mean - 1.0, mean + 1.0
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean - z * sd / math.sqrt(n), mean + z * sd / math.sqrt(n)


def paired_difference(after: list[float], before: list[float]) -> dict:
    """The accuracy difference of two checkpoints on the same rows, with its 95% interval (paired:
    per-row differences) and whether it is within noise (the interval holds 0)."""
    diffs = [a - b for a, b in zip(after, before, strict=True)]
    lo, hi = mean_interval(diffs)
    return {"difference": sum(diffs) / len(diffs), "ci95": [lo, hi], "within_noise": lo <= 0 <= hi, "n": len(diffs)}


def compare_checkpoints(results: list[dict]) -> list[dict]:
    """Each checkpoint against the one before it (pretrain → sft → grpo), greedy and sampled."""
    out = []
    for before, after in zip(results, results[1:]):
        for mode in ("greedy", "sampled"):
            diff = paired_difference(after[mode]["per_row_accuracy"], before[mode]["per_row_accuracy"])
            out.append({"from": before["name"], "to": after["name"], "mode": mode, **diff})
    return out


def is_chat(rows: list[dict]) -> bool:
    return bool(rows) and isinstance(rows[0]["prompt"], list)


def prompt_texts(task: Task, rows: list[dict], tokenizer) -> list[str]:
    """Chat prompts through the model's chat template (generation prompt added); text prompts as they are."""
    if is_chat(rows):
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError(f"task {task.name} has chat prompts but the model's tokenizer has no chat template")
        return [tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True) for r in rows]
    return [r["prompt"] for r in rows]


def prompt_ids(task: Task, rows: list[dict], tokenizer) -> list[list[int]]:
    """The rows' prompts as the model is asked them, in evaluation, in sft's training rows and in GRPO's
    rollouts (TRL's encoding): chat prompts through the template, text prompts with the tokenizer's specials."""
    return encode_prompts(tokenizer, prompt_texts(task, rows, tokenizer), task.name, chat=is_chat(rows))


def score(task: Task, rows: list[dict], completions: list[str], lengths: list[int], samples: int = 1) -> dict:
    """Metrics of `samples` completions per row (row-major): accuracy, per-reward means, pass@k for k ≤ samples."""
    expanded = [r for r in rows for _ in range(samples)]
    per = task.score([r["prompt"] for r in expanded], completions, expanded)
    success = task.success
    correct = [v >= success.at_least for v in per[success.reward]]
    n = len(completions)
    per_row = [sum(correct[i * samples : (i + 1) * samples]) / samples for i in range(len(rows))]
    interval = wilson_interval(sum(correct), n) if samples == 1 else mean_interval(per_row)
    out = {
        "n": len(rows),
        "samples_per_prompt": samples,
        "accuracy": sum(correct) / n,
        "accuracy_ci95": [max(0.0, interval[0]), min(1.0, interval[1])],
        "per_row_accuracy": per_row,
        "mean_reward": sum(per["total"]) / n,
        **{f"reward/{name}": sum(v) / n for name, v in per.items() if name != "total"},
        "format_rate": sum(v > 0 for v in per["total"]) / n,
        "mean_completion_tokens": sum(lengths) / n,
    }
    if samples > 1:
        counts = [round(a * samples) for a in per_row]
        for k in sorted({k for k in (1, 2, 4, 8) if k <= samples} | {samples}):
            out[f"pass@{k}"] = sum(pass_at_k(samples, c, k) for c in counts) / len(rows)
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
    prompts = prompt_ids(task, rows, policy_tokenizer(policy, engine))
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
