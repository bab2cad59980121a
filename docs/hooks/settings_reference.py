"""MkDocs hooks: reference.md's tables, generated at build time from the stages' settings models and the task
file's schema, so the reference cannot drift from the code (a field added is a row, its description its text);
index.md is the repository's README.md and changelog.md its CHANGELOG.md (one text each, not copies)."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from flows.settings_flags import REQUIRED, settings_of

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
        f"## {name}\n\n{spec.description}\n\n`{spec.settings.__name__}`; in a pipeline file: "
        + ", ".join(f"`{s}`" for s in spec.sections)
        + "\n\n"
        + table(spec.settings)
        for name, spec in STAGES.items()
        if spec.settings is not None
    ]
    sections.append(
        "## Task files\n\nWhat a task file (`--task FILE`) holds: `TaskSpec` (`rl/tasks.py`).\n\n" + table(TaskSpec)
    )
    return markdown.replace(PLACEHOLDER, "\n".join(sections))


def table(model: type[BaseModel]) -> str:
    """One row a setting, as the command's flags name them (flows/settings_flags.py: the same walk)."""
    lines = ["| setting | type | default | what it does |", "|---|---|---|---|"]
    for s in settings_of(model):
        default = "required" if s.default is REQUIRED else "empty" if s.default in ([], {}) else f"`{s.default!r}`"
        lines.append(f"| `{s.name}` | {type_text(s.annotation)} | {escape(default)} | {escape(s.description)} |")
    return "\n".join(lines) + "\n"


def type_text(t: Any) -> str:
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
