"""The one YAML loader for config files: `${VAR}` expansion, errors that name file and line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from common.paths import data_root


class ConfigError(ValueError):
    pass


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from `path`; `${LMFORGE_DATA}` and other environment variables expand."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    os.environ.setdefault("LMFORGE_DATA", str(data_root()))
    try:
        data = yaml.safe_load(os.path.expandvars(p.read_text()))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(p)
        raise ConfigError(f"{where}: not valid YAML: {e.problem or e}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of settings at the top level, found a {type(data).__name__}")
    return data


def pick_section(data: dict[str, Any], sections: list[str]) -> dict[str, Any]:
    """The first dotted section present (`grpo.settings`, then `grpo`), else the whole mapping:
    a stage reads its own part of a pipeline file, or a file of its own settings."""
    for dotted in sections:
        node: Any = data
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            return node
    return data
