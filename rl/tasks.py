"""GRPO tasks: prompts + a verifiable reward + how to evaluate them.

- `addition`: 2-digit addition as fixed-width text (`07+48=` → `055`). It is what a model
  of ~1M parameters pretrained for a minute on CPU can learn, and improve on with RL: the
  answer is checkable exactly, a pretrained model starts well above zero (so GRPO groups
  have reward variance to learn from) and well below perfect. The task also provides its
  pretraining corpus: every problem of the train split with its answer.
- `gsm8k`, `math500`: the R1-Zero prompt (`<think> … </think> <answer> … </answer>`) for
  real models (0.5–1.5B Hugging Face models on a GPU).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lm.paths import data_root
from rl.rewards import addition_reward, r1_zero_reward

R1_ZERO_PROMPT = (
    "A conversation between User and Assistant. The User asks a question, and the Assistant solves it. "
    "The Assistant first thinks about the reasoning process in the mind and then provides the User with the answer. "
    "The reasoning process is enclosed within <think> </think> and answer is enclosed within <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>.\nUser: {question}\nAssistant: <think>"
)


@dataclass(frozen=True)
class Task:
    name: str
    load: Callable[[str], list[dict]]  # split ("train" | "val" | "test") → [{"prompt", "answer"}]
    reward: Callable[..., list[float]]
    max_completion_tokens: int
    success_threshold: float  # reward at or above which a completion counts as correct
    write_pretraining_corpus: Callable[[Path], Path] | None = None  # for tasks a small LM must first learn


# --- addition --------------------------------------------------------------------------------------
def addition_problems(seed: int = 0) -> dict[str, list[dict]]:
    """All 10,000 pairs (a, b) in [0, 100)², shuffled and split 8,000 / 1,000 / 1,000."""
    pairs = [(a, b) for a in range(100) for b in range(100)]
    random.Random(seed).shuffle(pairs)
    rows = [{"prompt": f"{a:02d}+{b:02d}=", "answer": f"{a + b:03d}"} for a, b in pairs]
    return {"train": rows[:8000], "val": rows[8000:9000], "test": rows[9000:]}


def write_addition_corpus(path: Path) -> Path:
    """The pretraining text: each train problem with its answer, one document per block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n\n".join(r["prompt"] + r["answer"] for r in addition_problems()["train"]) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


# --- math with the R1-Zero prompt ------------------------------------------------------------------
def _gsm8k(split: str) -> list[dict]:
    name = "train" if split == "train" else "test"
    rows = [json.loads(line) for line in (data_root() / "gsm8k" / f"{name}.jsonl").read_text().splitlines() if line]
    return [{"prompt": R1_ZERO_PROMPT.format(question=r["question"]), "answer": r["answer"].split("####")[-1].strip().replace(",", "")} for r in rows]


def _math500(split: str) -> list[dict]:
    rows = [json.loads(line) for line in (data_root() / "math500" / "test.jsonl").read_text().splitlines() if line]
    return [{"prompt": R1_ZERO_PROMPT.format(question=r["problem"]), "answer": r["answer"]} for r in rows]


TASKS: dict[str, Task] = {
    "addition": Task("addition", lambda split: addition_problems()[split], addition_reward, 4, 1.0, write_addition_corpus),
    "gsm8k": Task("gsm8k", _gsm8k, r1_zero_reward, 512, 1.0),
    "math500": Task("math500", _math500, r1_zero_reward, 1024, 1.0),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]
