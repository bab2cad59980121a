"""Loading stage configs from YAML (+ overrides), with errors caught before any work."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from lm.paths import data_root

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    pass


def load_config(model: type[M], path: str | Path | None = None, section: str | None = None, **overrides: Any) -> M:
    """Read `path` (YAML; optionally one `section` of it), apply non-None overrides, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        # ${LMFORGE_DATA} and other environment variables expand in config files
        os.environ.setdefault("LMFORGE_DATA", str(data_root()))
        try:
            data = yaml.safe_load(os.path.expandvars(p.read_text())) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from e
        if section is not None:
            data = data.get(section, {}) or {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return model.model_validate(data)
    except ValidationError as e:
        where = f" in {path}" if path else ""
        lines = [f"invalid {model.__name__}{where}:"]
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "(root)"
            lines.append(f"  {loc}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None
