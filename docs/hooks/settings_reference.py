"""MkDocs hooks: reference.md's tables, generated at build time from the stages' settings models and the task
file's schema, so the reference cannot drift from the code (a field added is a row, its description its text);
index.md is the repository's README.md and changelog.md its CHANGELOG.md (one text each, not copies)."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

PLACEHOLDER = "<!-- settings tables -->"
REPO = Path(__file__).resolve().parents[2]


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if page.file.src_path == "index.md":  # the README's links into docs/, from inside docs/
        return (REPO / "README.md").read_text().replace("](docs/", "](")
    if page.file.src_path == "changelog.md":
        return (REPO / "CHANGELOG.md").read_text()
    if page.file.src_path != "reference.md":
        return markdown
    from flows.registry import STAGES
    from rl.task_spec import TaskSpec

    sections = [
        f"## {name}\n\n{spec.description}\n\n`{spec.settings_model().__name__}`; in a pipeline file: "
        + ", ".join(f"`{s}`" for s in spec.sections)
        + "\n\n"
        + table(spec.settings_model())
        for name, spec in STAGES.items()
        if spec.settings
    ]
    sections.append(
        "## Task files\n\nWhat a task file (`--task FILE`) holds: `TaskSpec` (`rl/tasks.py`).\n\n" + table(TaskSpec)
    )
    return markdown.replace(PLACEHOLDER, "\n".join(sections))


def table(model: type[BaseModel]) -> str:
    lines = ["| setting | type | default | what it does |", "|---|---|---|---|"]
    lines += [f"| `{name}` | {type_text(t)} | {default} | {text} |" for name, t, default, text in rows(model)]
    return "\n".join(lines) + "\n"


def rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any, str, str]]:
    """(dotted name, type, default, description) of every field; a nested model's fields under its name."""
    out = []
    for name, field in model.model_fields.items():
        inner = without_none(field.annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            out += rows(inner, f"{prefix}{name}.")
            continue
        if dataclasses.is_dataclass(inner):  # the model's shape (lm.model.ModelConfig)
            out += [(f"{prefix}{name}.{f.name}", f.type, f"`{f.default!r}`", "") for f in dataclasses.fields(inner)]
            continue
        default = field.get_default(call_default_factory=True)
        shown = "required" if field.is_required() else f"`{default!r}`" if default not in ([], {}) else "empty"
        out.append((prefix + name, field.annotation, escape(shown), escape(field.description or "")))
    return out


def without_none(t: Any) -> Any:
    args = [a for a in typing.get_args(t) if a is not type(None)]
    is_union = typing.get_origin(t) in (typing.Union, types.UnionType)
    return args[0] if is_union and len(args) == 1 else t


def type_text(t: Any) -> str:
    if isinstance(t, str):  # a dataclass field's annotation under `from __future__ import annotations`
        return escape(t)
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(type_text(a) for a in args)
    if origin is not None:
        return escape(f"{getattr(origin, '__name__', origin)}[{', '.join(type_text(a).strip('`') for a in args)}]")
    return "None" if t is type(None) else getattr(t, "__name__", str(t))


def escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
