"""Loading stage configs from YAML (+ overrides), with errors caught before any work."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from common.configfile import ConfigError, pick_section, read_yaml
from common.paths import REPO_ROOT

M = TypeVar("M", bound=BaseModel)

__all__ = ["ConfigError", "load_config"]


def load_config(
    model: type[M],
    path: str | Path | None = None,
    sections: list[str] = (),  # type: ignore[assignment]
    pipeline_sections: set[str] = frozenset(),
    **overrides: Any,
) -> M:
    """Read `path` (YAML; the first of `sections` it has, else all of it), apply non-None overrides,
    validate. A file whose top level holds other stages' sections (`pipeline_sections`: a
    pipeline file) but none of `sections` is an error naming the sections it has and the
    nearest valid name, not a whole pipeline file read as this stage's settings."""
    data: dict[str, Any] = {}
    if path is not None:
        raw = read_yaml(path)
        data = pick_section(raw, list(sections))
        tops = {s.split(".")[0] for s in sections}
        if data is raw and sections and set(raw) & set(pipeline_sections) and not set(raw) & tops:
            unknown = sorted(set(raw) - set(pipeline_sections))
            near = [m for k in unknown for m in difflib.get_close_matches(k, sorted(tops), n=1)]
            hint = f"; did you mean {near[0]!r} for {unknown[0]!r}?" if near else ""
            raise ConfigError(
                f"{path}: no {' or '.join(repr(t) for t in sorted(tops))} section (it has {', '.join(map(repr, raw))}; "
                f"the sections lmforge reads: {', '.join(sorted(pipeline_sections))}){hint}"
            )
    data = merged(data, {k: v for k, v in overrides.items() if v is not None})
    try:
        return model.model_validate(data)
    except ValidationError as e:
        where = f" in {path}" if path else ""
        lines = [f"invalid {model.__name__}{where}:"]
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "(root)"
            lines.append(f"  {loc}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on `base`, nested mappings merged key by key (a flag `--lora.r 8` keeps the file's `lora.alpha`)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def demo_config() -> dict[str, Any]:
    """configs/pipeline-demo.yaml: the demo's recipe, which the deployments' defaults read too."""
    return read_yaml(REPO_ROOT / "configs" / "pipeline-demo.yaml")
