"""Reward functions: plain `(prompts, completions, **columns) -> list[float]`, as TRL calls them.

- `r1_zero_reward`: the DeepSeek-R1-Zero format (`<think> … </think> <answer> … </answer>`):
  0.1 for the format, +1 for a correct answer. Correctness uses `math-verify` when it is
  installed, else a normalised numeric / string match (thousands separators, units,
  `\\boxed{}`, LaTeX fractions).
- `addition_reward`: the CPU task; +1 for the exact sum, +0.1 for a well-formed answer.
"""

from __future__ import annotations

import re
from fractions import Fraction

ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
FORMAT_RE = re.compile(r"^\s*(?:<think>)?.*?</think>\s*<answer>.*?</answer>\s*$", re.DOTALL)
NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def _text(completion) -> str:
    """TRL passes strings, or chat messages for conversational datasets."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion)
    return completion


def extract_answer(completion: str) -> str | None:
    """The content of the last `<answer>` block, or None when there is none."""
    found = ANSWER_RE.findall(completion)
    return found[-1].strip() if found else None


def _strip_latex(s: str) -> str:
    s = s.strip().strip("$").strip()
    m = re.search(r"\\boxed\{(.*)\}", s)
    if m:
        s = m.group(1)
    s = re.sub(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}", r"(\1)/(\2)", s)
    s = re.sub(r"\\[dt]?frac(\d)(\d)", r"(\1)/(\2)", s)  # TeX's brace-less shorthand: \frac34
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("\\,", "").replace("{,}", ",")
    s = re.sub(r"\\text\{[^}]*\}", "", s)
    return s.strip()


def _as_number(s: str) -> Fraction | None:
    s = _strip_latex(s).replace(" ", "")
    s = re.sub(r"^\((-?[\d.]+)\)/\((-?[\d.]+)\)$", r"\1/\2", s)
    m = NUMBER_RE.search(s.replace("$", ""))
    if not m:
        return None
    token = m.group().replace(",", "")
    try:
        return Fraction(token)
    except (ValueError, ZeroDivisionError):
        return None


def answers_match(predicted: str, truth: str) -> bool:
    """math-verify when available; else numbers equal as fractions, or normalised strings equal."""
    try:
        from math_verify import parse, verify

        gold, pred = parse(f"${truth}$"), parse(f"${predicted}$")
        if gold and pred and verify(gold, pred):
            return True
    except ImportError:
        pass
    a, b = _as_number(predicted), _as_number(truth)
    if a is not None and b is not None:
        return a == b
    norm = lambda s: re.sub(r"\s+", "", _strip_latex(s)).lower()  # noqa: E731
    return norm(predicted) == norm(truth)


def r1_zero_reward(prompts, completions, answer, **_) -> list[float]:
    rewards = []
    for completion, truth in zip(completions, answer):
        text = _text(completion)
        if len(ANSWER_RE.findall(text)) != 1 or not FORMAT_RE.match(text):
            rewards.append(0.0)  # no tags, or two answers: no format credit, nothing to grade
            continue
        rewards.append(0.1 + (1.0 if answers_match(extract_answer(text) or "", str(truth)) else 0.0))
    return rewards


def addition_reward(prompts, completions, answer, **_) -> list[float]:
    """Exact fixed-width sum → 1.1; three digits but wrong → 0.1; anything else → 0."""
    rewards = []
    for completion, truth in zip(completions, answer):
        text = _text(completion).strip()
        digits = text[:3]
        well_formed = len(digits) == 3 and digits.isdigit()
        rewards.append((1.0 if digits == truth else 0.0) + (0.1 if well_formed else 0.0))
    return rewards
