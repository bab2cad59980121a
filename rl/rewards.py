"""Reward functions: plain `(prompts, completions, **columns) -> list[float]`, as TRL calls them.

- `r1_zero_reward`: the DeepSeek-R1-Zero format (`<think> … </think> <answer> … </answer>`):
  0.1 for the format, +1 for a correct answer. Correctness uses `math-verify` when it is
  installed, else a normalised numeric / string match (thousands separators, units,
  `\\boxed{}`, LaTeX fractions).

A task file names its rewards by kind (`RewardSpec`); `build_reward` turns each into such a
function, named as the task names it (TRL logs each reward under its function's name).
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.configfile import ConfigError

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


class RewardSpec(BaseModel):
    """One reward of a task. Comparisons (exact, numeric, math, contains) read the answer out of
    the completion with `extract` first (a regex: group 1, else the whole match; no match scores 0)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["exact", "numeric", "math", "regex", "contains", "length", "python"]
    weight: float = 1.0
    name: str | None = Field(
        None, description="how it is logged and named in `success`; default: the kind (python: the function)"
    )
    extract: str | None = Field(None, description="regex that reads the answer out of a completion")
    pattern: str | None = Field(None, description="regex: the completion (stripped) must match it in full")
    tolerance: float = Field(1e-6, ge=0, description="numeric: |predicted - answer| allowed")
    max_chars: int | None = Field(None, ge=1, description="length: completions longer than this score -1")
    soft_chars: int = Field(
        0, ge=0, description="length: the penalty ramps from 0 to -1 over this many characters before max_chars (DAPO)"
    )
    function: str | None = Field(
        None, description="python: 'module:function' with TRL's signature (prompts, completions, **columns)"
    )

    @model_validator(mode="after")
    def _needs(self) -> RewardSpec:
        need = {"regex": "pattern", "length": "max_chars", "python": "function"}.get(self.kind)
        if need and getattr(self, need) is None:
            raise ValueError(f"a {self.kind} reward needs `{need}`")
        for regex in (self.extract, self.pattern):
            if regex is not None:
                try:
                    re.compile(regex)
                except re.error as e:
                    raise ValueError(f"{regex!r} is not a valid regex: {e}") from None
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return self.function.rsplit(":", 1)[-1] if self.kind == "python" and self.function else self.kind


def regex_value(pattern: str, text: str) -> str | None:
    """What `pattern` reads out of `text`: its group 1, else the whole match, stripped; None when it does not match."""
    m = re.search(pattern, text, re.DOTALL)
    if m is None:
        return None
    return (m.group(1) if m.groups() else m.group()).strip()


def _extracted(text: str, extract: str | None) -> str | None:
    return text.strip() if extract is None else regex_value(extract, text)


def _numbers_close(predicted: str, truth: str, tolerance: float) -> bool:
    a, b = _as_number(predicted), _as_number(truth)
    return a is not None and b is not None and abs(float(a) - float(b)) <= tolerance


def _import_function(spec: str) -> Callable:
    module_name, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except Exception as e:  # noqa: BLE001  whatever the user's module raises on import, say which and what
        raise ConfigError(f"python reward {spec!r} does not load: {type(e).__name__}: {e}") from None
    if not callable(fn):
        raise ConfigError(f"python reward {spec!r} is not a function")
    return fn


def build_reward(spec: RewardSpec) -> Callable[..., list[float | None]]:
    """The reward as TRL calls it: `(prompts, completions, answer=..., **columns) -> list[float | None]`."""
    if spec.kind == "python":
        fn = _import_function(spec.function or "")

        def reward(prompts, completions, **columns):
            return fn(prompts, completions, **columns)

        reward.source_file = inspect.getsourcefile(fn)  # its code enters the stage's cache key
    else:
        compare = {
            "exact": lambda pred, truth: pred == truth.strip(),
            "numeric": lambda pred, truth: _numbers_close(pred, truth, spec.tolerance),
            "math": answers_match,
            "contains": lambda pred, truth: truth.strip() in pred,
        }.get(spec.kind)

        def reward(prompts, completions, answer=None, **_):
            texts = [_text(c) for c in completions]
            if spec.kind == "regex":
                return [1.0 if re.fullmatch(spec.pattern or "", t.strip(), re.DOTALL) else 0.0 for t in texts]
            if spec.kind == "length":
                return [_overlong_penalty(len(t), spec.max_chars or 0, spec.soft_chars) for t in texts]
            preds = [_extracted(t, spec.extract) for t in texts]
            return [1.0 if p is not None and compare(p, str(a)) else 0.0 for p, a in zip(preds, answer or [])]

    reward.__name__ = spec.label
    return checked(spec.label, reward)


class RewardError(ValueError):
    """A reward that raised or returned something that is not a score: one line naming it, the row, the value."""


def checked(name: str, reward: Callable[..., list]) -> Callable[..., list[float | None]]:
    """`reward`, its failures named: an exception is re-raised as one line with the first row that raises
    (rows retried one by one), and every value must be a finite number or None (TRL's "does not apply")."""

    def row_of(i: int, prompts, completions, columns) -> tuple:
        return [prompts[i]], [completions[i]], {k: [v[i]] for k, v in columns.items() if isinstance(v, list)}

    def call(prompts, completions, **columns):
        try:
            values = list(reward(prompts, completions, **columns))
        except Exception as e:
            for i in range(len(completions)):
                try:
                    p, c, cols = row_of(i, prompts, completions, columns)
                    reward(p, c, **cols)
                except Exception as row_error:
                    raise RewardError(
                        f"reward {name!r} raised {type(row_error).__name__}: {row_error} on row {i} "
                        f"(completion {_text(completions[i])[:80]!r})"
                    ) from None
            raise RewardError(
                f"reward {name!r} raised {type(e).__name__}: {e} on a batch of {len(completions)}"
            ) from None
        if len(values) != len(completions):
            raise RewardError(f"reward {name!r} returned {len(values)} values for {len(completions)} completions")
        for i, v in enumerate(values):
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), -float("inf")):
                raise RewardError(
                    f"reward {name!r} returned {v!r} for row {i} (completion {_text(completions[i])[:80]!r}): a reward "
                    "is a finite number, or None where it does not apply"
                )
        return values

    call.__name__ = name
    if hasattr(reward, "source_file"):
        call.source_file = reward.source_file  # type: ignore[attr-defined]
    return call


def _overlong_penalty(length: int, max_len: int, soft: int) -> float:
    """DAPO's soft overlong punishment: 0 up to max_len - soft, then linearly down to -1 at max_len, -1 beyond."""
    if length <= max_len - soft:
        return 0.0
    if length > max_len:
        return -1.0
    return (max_len - soft - length) / soft
