"""Loading stage configs from YAML (+ overrides), with errors caught before any work."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from lm.configfile import ConfigError, pick_section, read_yaml

M = TypeVar("M", bound=BaseModel)

__all__ = ["ConfigError", "load_config"]


def load_config(model: type[M], path: str | Path | None = None, sections: list[str] = (), **overrides: Any) -> M:  # type: ignore[assignment]
    """Read `path` (YAML; the first of `sections` it has, else all of it), apply non-None overrides, validate."""
    data: dict[str, Any] = pick_section(read_yaml(path), list(sections)) if path is not None else {}
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return model.model_validate(data)
    except ValidationError as e:
        where = f" in {path}" if path else ""
        lines = [f"invalid {model.__name__}{where}:"]
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "(root)"
            lines.append(f"  {loc}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None
