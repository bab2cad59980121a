"""Evaluation: batched generation over a held-out split → accuracy, reward, format rate, length.

Each evaluation samples greedily and at temperature 1 from one loaded policy: a `vllm.LLM`
or a (model, left-padding tokenizer) pair, as `rl.generation` loads them. GRPO evaluates
with the trainer's own engine before and after training (a vLLM engine start costs ~20 s
on a CPU, more than the generation itself at these sizes). The result says which engine
produced it.
"""

from __future__ import annotations

from pathlib import Path

from rl.generation import ENGINES, resolve_engine
from rl.tasks import Task

MODES = {"greedy": 0.0, "sampled": 1.0}


def score(task: Task, rows: list[dict], completions: list[str], lengths: list[int]) -> dict:
    prompts = [r["prompt"] for r in rows]
    rewards = task.reward(prompts, completions, answer=[r["answer"] for r in rows])
    n = len(rows)
    return {
        "n": n,
        "accuracy": sum(r >= task.success_threshold for r in rewards) / n,
        "mean_reward": sum(rewards) / n,
        "format_rate": sum(r > 0 for r in rewards) / n,
        "mean_completion_tokens": sum(lengths) / n,
        "examples": [{"prompt": p, "completion": c, "reward": r} for p, c, r in list(zip(prompts, completions, rewards))[:5]],
    }


def evaluate(policy, engine: str, task: Task, split: str = "test", limit: int | None = None, seed: int = 0) -> dict[str, dict]:
    """{"greedy": metrics, "sampled": metrics} of a loaded policy on the first `limit` rows of `split`."""
    generate = ENGINES[engine][1]
    rows = task.load(split)[:limit]
    results = {}
    for mode, temperature in MODES.items():
        completions, lengths = generate(policy, [r["prompt"] for r in rows], task.max_completion_tokens, temperature, seed)
        results[mode] = {"engine": engine, "split": split, "temperature": temperature, **score(task, rows, completions, lengths)}
    return results


def evaluate_model_dir(model_dir: Path, task: Task, split: str = "test", limit: int | None = None, seed: int = 0,
                       engine: str = "auto") -> dict[str, dict]:
    """Load a Hugging Face model folder with `engine` and evaluate it."""
    engine = resolve_engine(engine)
    return evaluate(ENGINES[engine][0](Path(model_dir)), engine, task, split, limit, seed)
