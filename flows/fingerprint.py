"""What a stage's output depends on besides its config and inputs: its code and libraries.

A stage's code is its flow module plus every library module (`common`, `filters`, `lm`,
`rl`, `scaling`) reachable from it through imports, found statically with `ast` (imports inside
functions included). Each module is hashed on its syntax tree with docstrings removed,
so comments, docstrings and formatting do not count and any change to what runs does.
The third-party distributions those modules import directly are recorded with their
versions (torch, fasttext-numpy2, datasketch, ...), except the ones that only
orchestrate or print (`NOT_OUTPUT_SHAPING`).

Editing `lm/model.py` therefore changes the key of `pretrain` (and of the scaling sweep,
which imports it) but not of `clean-data`; editing the CLI changes no key.
"""

from __future__ import annotations

import ast
import hashlib
import sys
import threading
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path
from typing import Any

from common.paths import REPO_ROOT

LIBRARY_PACKAGES = ("common", "filters", "lm", "rl", "scaling")
# Distributions that cannot change what a stage writes: orchestration, config, display.
NOT_OUTPUT_SHAPING = {
    "prefect",
    "pydantic",
    "typer",
    "rich",
    "tqdm",
    "pyyaml",
    "prefect-dask",
    "dask",
    "distributed",
    "wandb",
    "tensorboard",
    "psutil",
}


def module_path(name: str, repo: Path = REPO_ROOT) -> Path | None:
    rel = Path(*name.split("."))
    for candidate in (repo / rel.with_suffix(".py"), repo / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from lm import model` imports the module lm.model
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return tree


# CPython 3.11's AST constructor is not safe to run in two threads at once (a sweep's
# concurrent pretrain sub-flows fingerprinted together and one died with "SystemError: AST
# constructor recursion depth mismatch"), so parsing is serialised.
_PARSE_LOCK = threading.Lock()


def module_facts(path: Path) -> tuple[str, set[str]]:
    """(sha256 of the module's syntax tree without docstrings, the names it imports).
    Comments never reach the tree, so they do not count."""
    with _PARSE_LOCK:
        tree = ast.parse(path.read_text(), str(path))
        imported = _imported_names(tree)
        digest = hashlib.sha256(ast.dump(_strip_docstrings(tree), include_attributes=False).encode()).hexdigest()[:16]
    return digest, imported


@lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    return packages_distributions()  # scans every installed distribution: once per process


def _distribution_of(top_level: str) -> str | None:
    dists = _distributions().get(top_level)
    return sorted(dists)[0].lower() if dists else None


def code_fingerprint(root_module: str, repo: Path = REPO_ROOT) -> dict[str, Any]:
    """{"digest", "root", "modules": {name: hash}, "libraries": {dist: version}} for one stage."""
    modules: dict[str, str] = {}
    third_party: set[str] = set()
    todo = [root_module]
    while todo:
        name = todo.pop()
        if name in modules:
            continue
        path = module_path(name, repo)
        if path is None:
            continue
        modules[name], imports = module_facts(path)
        for imported in imports:
            top = imported.split(".")[0]
            if top in LIBRARY_PACKAGES:
                todo.append(imported)
            elif top not in sys.stdlib_module_names and top != "flows":
                third_party.add(top)
    libraries: dict[str, str] = {}
    for top in sorted(third_party):
        dist = _distribution_of(top)
        if dist is None or dist in NOT_OUTPUT_SHAPING:
            continue
        try:
            libraries[dist] = version(dist)
        except PackageNotFoundError:
            continue
    modules = dict(sorted(modules.items()))
    payload = repr((sorted(modules.items()), sorted(libraries.items()))).encode()
    return {
        "digest": hashlib.sha256(payload).hexdigest()[:16],
        "root": root_module,
        "modules": modules,
        "libraries": libraries,
    }
