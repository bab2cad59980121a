"""Evaluation: batched generation over a held-out split → accuracy, reward, format rate, length.

The model is loaded once per evaluation and sampled greedily and at temperature 1 (vLLM's
engine start costs ~20 s on a CPU, more than the generation itself at these sizes). The
result says which engine produced it.
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


def evaluate(model_dir: Path, task: Task, split: str = "test", limit: int | None = None, seed: int = 0, engine: str = "auto") -> dict[str, dict]:
    """{"greedy": metrics, "sampled": metrics} on the first `limit` rows of `split`."""
    engine = resolve_engine(engine)
    load, generate = ENGINES[engine]
    rows = task.load(split)[:limit]
    model = load(Path(model_dir))
    results = {}
    for mode, temperature in MODES.items():
        completions, lengths = generate(model, [r["prompt"] for r in rows], task.max_completion_tokens, temperature, seed)
        results[mode] = {"engine": engine, "split": split, "temperature": temperature, **score(task, rows, completions, lengths)}
    del model  # a vLLM engine holds its KV cache until collected
    return results
