"""Tasks as data: one YAML file (or the same mapping inline) names the data, the prompt and the rewards.

```yaml
name: my-task
data: {train: train.jsonl, test: test.jsonl}   # or {path: all.jsonl, test_fraction: 0.1}, or {generator: addition}
prompt: "Q: {question}\nA:"                    # str.format over the row's columns, or Jinja: "Q: {{ question }}"
answer_field: answer
rewards: [{kind: exact, weight: 1.0}]
success: {reward: exact, at_least: 1.0}
max_completion_tokens: 64
```

`--task` takes a built-in name (a file in `configs/tasks/`) or a path. Relative data paths
resolve against the task file. A reference that is not an lmforge task file (an lm-evaluation-harness
task file, a folder of them, or a task name the harness registers) is the harness's: `evaluate`
scores it with the harness itself (lm/harness.py), `sft` and `grpo` train on it through
rl/harness_task.py. Everything a file can get wrong is checked when the task is
loaded, before any model is: missing files and columns (named, with the columns there), a
`python` reward that does not import, a prompt template that does not render.

The built-ins: `addition` (2-digit sums as fixed-width text, `07+48=` → `055`; the data is
generated, and the task also writes the corpus a small model is pretrained on first),
`gsm8k` and `math500` with the R1-Zero prompt for real models on a GPU.

This module is the loaded task and its resolution from a reference; the file's schema is rl/task_spec.py,
reading and generating rows rl/task_data.py, the templates rl/templates.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from common.configfile import ConfigError, read_yaml
from common.paths import REPO_ROOT
from rl.rewards import build_reward, regex_value
from rl.task_data import addition_problems, hash_fraction, read_rows
from rl.task_spec import SuccessSpec, TaskSpec
from rl.templates import render_template

BUILTIN_DIR = REPO_ROOT / "configs" / "tasks"
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Reward:
    name: str
    weight: float
    fn: Callable[..., list[float | None]]


@dataclass
class Task:
    """A loaded task: rows per split (`prompt`, `answer`, the row's other columns), rewards, success rule."""

    spec: TaskSpec
    base: Path  # relative data paths resolve here
    source: Path | None = None  # the task file, when it came from one
    _rows: dict[str, list[dict]] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def max_completion_tokens(self) -> int:
        return self.spec.max_completion_tokens

    @cached_property
    def rewards(self) -> list[Reward]:
        return [Reward(r.label, r.weight, cut_at_stops(build_reward(r), self.spec.stop)) for r in self.spec.rewards]

    @property
    def success(self) -> SuccessSpec:
        return self.spec.success or SuccessSpec(reward=self.rewards[0].name, at_least=1.0)

    def score(self, prompts: list, completions: list[str], rows: list[dict]) -> dict[str, list[float]]:
        """Every reward per completion (None, "does not apply", reported as 0), and their weighted sum under
        "total", which leaves a None out as TRL does."""
        columns = {k: [r.get(k) for r in rows] for k in rows[0]} if rows else {}
        columns.pop("prompt", None)
        raw = {r.name: r.fn(prompts, completions, **columns) for r in self.rewards}
        per = {name: [float(v or 0.0) for v in values] for name, values in raw.items()}
        per["total"] = [
            sum(r.weight * raw[r.name][i] for r in self.rewards if raw[r.name][i] is not None)
            for i in range(len(completions))
        ]
        return per

    def check_rewards(self) -> None:
        """Every reward called on the first test row with its gold answer as the completion: a reward that
        raises or returns a non-number fails at load, before any model (RewardError names it)."""
        row = self.load("test")[0]
        self.score([row["prompt"]], [row["target"]], [row])

    def completion(self, row: dict) -> str:
        """The completion `sft` trains on for a loaded row."""
        return row["target"]

    def with_max_completion_tokens(self, n: int) -> Task:
        return Task(self.spec.model_copy(update={"max_completion_tokens": n}), self.base, self.source)

    def load(self, split: str) -> list[dict]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        if split not in self._rows:
            self._rows.update(self._load_splits())
        rows = self._rows[split]
        if not rows:
            raise ConfigError(
                f"task {self.name}: the {split} split has no rows (data: "
                f"{self.spec.data.model_dump(exclude_none=True)})"
            )
        return rows

    def files(self) -> list[Path]:
        """Every file whose content shapes this task: its file, its data, its python rewards' source."""
        d = self.spec.data
        data = [self._path(p) for p in (d.train, d.test, d.path) if p]
        data_files = [f for p in data for f in (sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p])]
        code = [Path(f) for r in self.rewards if (f := getattr(r.fn, "source_file", None))]
        return ([self.source] if self.source else []) + data_files + code

    def write_pretraining_corpus(self, path: Path) -> Path:
        """For generated tasks a small LM must first learn: each train problem with what `sft` trains on (its
        answer, or a noisy teacher's demonstration), one block each: pretraining sees no truth SFT does not."""
        if self.spec.data.generator is None:
            raise ConfigError(
                f"task {self.name} has no generated data to pretrain on: give the pipeline a checkpoint to tune"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "\n\n".join(r["prompt"] + r["target"] for r in self.load("train")) + "\n"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        return path

    # --- loading -------------------------------------------------------------------------------
    def _path(self, p: str) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() else self.base / path

    def _load_splits(self) -> dict[str, list[dict]]:
        d = self.spec.data
        if d.generator == "addition":
            problems = addition_problems(teacher_errors=d.teacher_errors)
            raw = {s: problems[s] for s in SPLITS}
        elif d.path:
            raw = {"train": [], "test": []}
            for r in read_rows(self._path(d.path)):
                raw["test" if hash_fraction(r) < d.test_fraction else "train"].append(r)
        else:
            raw = {s: read_rows(self._path(p)) if (p := getattr(d, s)) else [] for s in SPLITS}
        where = (
            {s: str(self._path(getattr(d, s) or d.path)) for s in SPLITS if getattr(d, s) or d.path}
            if not d.generator
            else {}
        )
        train_where = where.get("train", "train")
        shots = [
            (render_template(self.spec.prompt or "", r, train_where, i), self._answer(r, train_where, i))
            for i, r in enumerate(raw["train"][: self.spec.shots])
        ]
        out = {}
        for split, rows in raw.items():
            skip = self.spec.shots if split == "train" else 0  # the shots are not also problems
            out[split] = [self._render(r, where.get(split, split), i, shots) for i, r in enumerate(rows) if i >= skip]
        return out

    def _answer(self, row: dict, where: str, index: int) -> str:
        s = self.spec
        if s.answer_template is not None:
            answer = render_template(s.answer_template, row, where, index, "answer_template")
        elif s.answer_field not in row:
            raise ConfigError(
                f"{where}: row {index} has no column {s.answer_field!r} (answer_field); its columns: {', '.join(row)}"
            )
        else:
            answer = str(row[s.answer_field])
        if s.answer_pattern:
            value = regex_value(s.answer_pattern, answer)
            if value is None:
                raise ConfigError(
                    f"{where}: row {index}: answer {answer[:60]!r} does not match answer_pattern {s.answer_pattern!r}"
                )
            answer = value
        return answer

    def _render(self, row: dict, where: str, index: int, shots: list[tuple[str, str]]) -> dict:
        """A row with its prompt (text, or chat messages), gold answer and SFT target.
        `shots`: (prompt text, answer) pairs."""
        s = self.spec
        answer = self._answer(row, where, index)
        if s.messages is not None:
            if s.messages not in row:
                raise ConfigError(
                    f"{where}: row {index} has no column {s.messages!r} (messages); its columns: {', '.join(row)}"
                )
            prompt: Any = [m for m in row[s.messages] if m.get("role") != "assistant"]
        else:
            text = "".join(f"{q} {a}\n\n" for q, a in shots) + render_template(s.prompt or "", row, where, index)
            prompt = (
                ([{"role": "system", "content": s.system}] if s.system else []) + [{"role": "user", "content": text}]
                if s.chat_template
                else text
            )
        target = render_template(s.completion, row, where, index, "completion") if s.completion else answer
        return {**row, "prompt": prompt, "answer": answer, "target": target}


def cut_at_stops(reward: Callable[..., list[float | None]], stops: list[str]) -> Callable[..., list[float | None]]:
    """The reward, scoring each completion up to its first stop string (as lm-eval's `until` ends a generation)."""
    if not stops:
        return reward

    def cut(text):
        if not isinstance(text, str):
            return text
        ends = [i for i in (text.find(s) for s in stops) if i >= 0]
        return text[: min(ends)] if ends else text

    def scored(prompts, completions, **columns):
        return reward(prompts, [cut(c) for c in completions], **columns)

    scored.__name__ = reward.__name__
    if hasattr(reward, "source_file"):
        scored.source_file = reward.source_file  # type: ignore[attr-defined]
    return scored


# --- loading a task ---------------------------------------------------------------------------------
def builtin_tasks() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def task_source(task: str | dict) -> Path | None:
    """The lmforge task file a reference names (a built-in's file in configs/tasks/, or a path); None for an
    inline mapping, or for a reference that is not an lmforge task file (an lm-eval task, folder or name)."""
    if isinstance(task, dict):
        return None
    if (BUILTIN_DIR / f"{task}.yaml").is_file() and "/" not in task:
        return BUILTIN_DIR / f"{task}.yaml"
    path = Path(task).expanduser()
    if path.suffix in (".yaml", ".yml") and not path.is_file():
        raise ConfigError(f"task file {task} does not exist")
    if path.is_file():
        from lm.harness import is_harness_mapping, read_task_yaml

        return None if is_harness_mapping(read_task_yaml(path)) else path
    return None


def is_harness_reference(task: str | dict) -> bool:
    """A task reference that lm-evaluation-harness resolves (not a built-in, an lmforge task file or a mapping)."""
    return isinstance(task, str) and task_source(task) is None


def get_task(task: str | dict | Task, base: Path | None = None, include_path: list[str] | tuple[str, ...] = ()):
    """A task from a built-in name, an lmforge task file, an inline mapping (relative paths against `base`), or
    an lm-eval reference (a task file, a folder of them, a registered task name) for `sft`/`grpo`."""
    if not isinstance(task, (str, dict)):
        return task  # already loaded
    if is_harness_reference(task):
        from lm.harness import load_harness_tasks
        from rl.harness_task import HarnessTask

        try:
            return HarnessTask(load_harness_tasks(task, include_path))  # type: ignore[arg-type]
        except ConfigError as e:
            if str(e).startswith("unknown task"):
                raise ConfigError(f"{e}; lmforge's built-in tasks: {', '.join(builtin_tasks())}") from None
            raise
    source = task_source(task)
    data = read_yaml(source) if source else dict(task)  # type: ignore[arg-type]
    where = str(source) if source else "the inline task"
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(x) for x in err['loc']) or '(root)'}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"{where}: invalid task: {problems}") from None
    loaded = Task(
        spec, source.parent.resolve() if source else (base or Path.cwd()), source.resolve() if source else None
    )
    try:
        loaded.rewards  # noqa: B018  a python reward that does not import fails here
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    return loaded
