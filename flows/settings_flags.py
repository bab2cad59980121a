"""A stage command's flags, generated from its settings model: every setting is a flag with its description and
default (`--max-steps 50`; nested settings dotted: `--lora.r 8`, `--model.d-model 128`; yes/no settings
`--packing/--no-packing`; a list repeated, `--budgets 1e10 --budgets 1e11`; anything else as YAML, `--betas
'[0.9, 0.95]'`). Flags apply over the `-c FILE` settings and the model validates the result, so a new setting
is one line in its model and no flag is declared twice.

Typer reads every command's options when the CLI starts; a stage's settings model lives beside code that
imports torch, so the flags are built only for the command that runs (`StageGroup`): `lmforge ls` imports no
settings model.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import typer
import yaml
from pydantic import BaseModel
from typer.core import TyperGroup

SIMPLE = (int, float, str, bool)


@dataclasses.dataclass(frozen=True)
class Setting:
    path: tuple[str, ...]  # ("lora", "r")
    annotation: Any
    default: Any  # REQUIRED when the setting has none
    description: str

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @property
    def flag(self) -> str:
        return "--" + ".".join(p.replace("_", "-") for p in self.path)

    @property
    def param(self) -> str:  # the Python name typer passes it under
        return "setting__" + "__".join(self.path)


REQUIRED = object()


def settings_of(model: type, prefix: tuple[str, ...] = ()) -> list[Setting]:
    """Every leaf setting of a pydantic model (or a dataclass inside one), nested ones under their parent's name."""
    if dataclasses.is_dataclass(model):
        hints = typing.get_type_hints(model)
        fields = [
            (f.name, hints[f.name], REQUIRED if f.default is dataclasses.MISSING else f.default, "")
            for f in dataclasses.fields(model)
        ]
    else:
        fields = [
            (
                name,
                f.annotation,
                REQUIRED if f.is_required() else f.get_default(call_default_factory=True),
                f.description or "",
            )
            for name, f in model.model_fields.items()
        ]
    out = []
    for name, annotation, default, description in fields:
        inner = without_none(annotation)
        if isinstance(inner, type) and (issubclass(inner, BaseModel) or dataclasses.is_dataclass(inner)):
            out += settings_of(inner, (*prefix, name))
        else:
            out.append(Setting((*prefix, name), annotation, default, description))
    return out


def without_none(t: Any) -> Any:
    """`X` of `X | None`; any other type as it is."""
    args = [a for a in typing.get_args(t) if a is not type(None)]
    union = typing.get_origin(t) in (typing.Union, types.UnionType)
    return args[0] if union and len(args) == 1 else t


def flag_type(annotation: Any) -> Any:
    """What the flag parses: the setting's own type for int, float, str, bool and lists of them; str, read as
    YAML, for choices and anything else."""
    inner = without_none(annotation)
    if inner in SIMPLE:
        return inner
    if typing.get_origin(inner) is list and typing.get_args(inner)[0] in SIMPLE:
        return list[typing.get_args(inner)[0]]
    return str


def flag_help(s: Setting) -> str:
    inner = without_none(s.annotation)
    parts = [s.description] if s.description else []
    if typing.get_origin(inner) is Literal:
        parts.append("one of " + " | ".join(map(str, typing.get_args(inner))))
    elif flag_type(s.annotation) is str and inner is not str:
        parts.append("YAML")
    parts.append("required" if s.default is REQUIRED else f"default: {s.default!r}")
    return "; ".join(parts).replace("[", "\\[")  # rich markup: a default such as [en] is text


def flag(s: Setting) -> inspect.Parameter:
    kind = flag_type(s.annotation)
    declared = f"{s.flag}/--no-{s.flag[2:]}" if kind is bool else s.flag
    return inspect.Parameter(
        s.param,
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(None, declared, help=flag_help(s), show_default=False),
        annotation=kind | None,
    )


def given_settings(settings: list[Setting], values: dict[str, Any]) -> dict[str, Any]:
    """The flags given on the command line as nested settings (`{"lora": {"r": 8}}`)."""
    nested: dict[str, Any] = {}
    for s in settings:
        value = values.get(s.param)
        if value is None or value == []:
            continue
        if flag_type(s.annotation) is str and without_none(s.annotation) is not str:
            value = yaml.safe_load(value)
        node = nested
        for part in s.path[:-1]:
            node = node.setdefault(part, {})
        node[s.path[-1]] = value
    return nested


def with_setting_flags(fn: Callable, model: type, declared: frozenset[str]) -> Callable:
    """`fn` with a flag for every setting of `model` but the `declared` ones (which `fn` declares itself, e.g. a
    positional argument); `fn` gets the flags given as `settings=` (nested)."""
    settings = [s for s in settings_of(model) if s.path[0] not in declared]
    own = inspect.signature(fn)

    @functools.wraps(fn)
    def command(**values: Any) -> Any:
        given = given_settings(settings, values)
        return fn(**{k: v for k, v in values.items() if not k.startswith("setting__")}, settings=given)

    params = [p for p in own.parameters.values() if p.name != "settings"] + [flag(s) for s in settings]
    command.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
    return command


def without_settings(fn: Callable) -> Callable:
    """`fn` as the CLI lists it before it runs: its own parameters, no generated flags."""

    @functools.wraps(fn)
    def command(**values: Any) -> Any:
        return fn(**values, settings={})

    own = inspect.signature(fn)
    command.__signature__ = own.replace(parameters=[p for p in own.parameters.values() if p.name != "settings"])  # type: ignore[attr-defined]
    return command


class StageGroup(TyperGroup):
    """The `lmforge` group: a stage command is rebuilt with its settings' flags when it is the one that runs."""

    stage_commands: dict[str, Callable[[], Any]] = {}

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        # the command that runs, not the ones `lmforge --help` lists: those stay as registered
        name, command, rest = super().resolve_command(ctx, args)
        build = self.stage_commands.get(name or "")
        return name, build() if build is not None else command, rest


def stage_command(app: typer.Typer, name: str, settings_model: Callable[[], type], declared: tuple[str, ...] = ()):
    """Register `fn` as the `name` command of `app` (whose group class is StageGroup), its flags generated from
    `settings_model()` when it runs; `declared`: settings `fn` declares as parameters itself."""

    def register(fn: Callable) -> Callable:
        app.command(name)(without_settings(fn))

        def build() -> Any:
            single = typer.Typer(add_completion=False)
            single.command(name)(with_setting_flags(fn, settings_model(), frozenset(declared)))
            return typer.main.get_command(single)

        StageGroup.stage_commands[name] = build
        return fn

    return register
