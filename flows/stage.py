"""What every stage flow shares: cache key → verified hit or build → publish, with Prefect artifacts.

A flow calls `run_stage(...)` with a `build(out_dir, work_dir) -> summary` function from
library code. `out_dir` is the fresh temp dir that becomes the artifact; `work_dir` is a
scratch dir keyed like the artifact that survives a crash (pretraining keeps its
checkpoints there to resume) and is removed once the artifact is published.

The key covers the stage's code (flows/fingerprint.py), its output-shaping config and
its inputs. A hit is served only when the artifact checks out (flows/store.check); a
damaged one is reported and rebuilt. A miss says how it differs from the stage's newest
artifact (config field, code module, library version, inputs), so a rebuild is never a
surprise. Input artifacts are held with shared locks for the whole run: gc skips them.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel

from flows.fingerprint import code_fingerprint
from flows.processes import reassert_stop_handlers
from flows.registry import STAGE_MODULES
from flows.store import (
    VERIFY_ON_HIT_BYTES,
    Artifact,
    ArtifactStore,
    StoreError,
    check,
    compute_key,
    config_for_key,
    differences,
    fingerprint_file,
    hashed_bytes,
    read_manifest,
)

# a full disk or quota: the build cannot finish, however often it is retried
DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def artifact_slug(stage: str) -> str:
    # Prefect artifact keys allow lowercase letters, digits and dashes only
    return "".join(c if c.isalnum() else "-" for c in stage.lower())


def run_stage(
    stage: str,
    config: BaseModel,
    build: Callable[[Path, Path], dict[str, Any]],
    inputs: list[Artifact] = (),  # type: ignore[assignment]
    raw_files: list[Path] = (),  # type: ignore[assignment]
    force: bool = False,
    store: ArtifactStore | None = None,
    code_root: str | None = None,
) -> Artifact:
    """The code fingerprint in the key starts at `code_root`, by default the stage's flow module in the registry."""
    logger = get_run_logger()
    reassert_stop_handlers()
    store = store or ArtifactStore()
    fingerprints = [fingerprint_file(Path(f)) for f in raw_files]
    code = code_fingerprint(code_root or STAGE_MODULES[stage])
    key = compute_key(stage, code["digest"], config, [a.key for a in inputs], fingerprints)
    manifest: dict[str, Any] = {
        "config": config.model_dump(mode="json"),
        "config_key": config_for_key(config),
        "code": code,
        "inputs": [{"stage": a.stage, "key": a.key} for a in inputs],
        "raw_inputs": fingerprints,
    }
    with store.using(list(inputs)), store.lock(stage, key):
        existing = store.get(stage, key)
        if existing is not None and not force:
            problems = check(existing, deep=hashed_bytes(read_manifest(existing.path) or {}) <= VERIFY_ON_HIT_BYTES)
            if not problems:
                logger.info("cache hit: %s/%s (%s)", stage, key, existing.path)
                create_markdown_artifact(
                    key=f"{artifact_slug(stage)}-cache",
                    markdown=f"**cache hit**: `{stage}/{key}`\n\n`{existing.path}`",
                    description=f"{stage}: cache hit",
                )
                return existing
            logger.warning("%s/%s is damaged (%s): rebuilding it", stage, key, "; ".join(problems[:5]))
            shutil.rmtree(existing.path)
        else:
            _log_why_built(store, stage, key, manifest, logger)
        t0 = time.time()
        work_dir = store.home / "work" / f"{stage}-{key}"
        try:
            work_dir.mkdir(parents=True, exist_ok=True)
            with store.building(stage, key, manifest) as tmp:
                manifest["summary"] = build(tmp, work_dir)
        except OSError as e:
            if e.errno not in DISK_FULL:
                raise
            # the temp dir is already gone (building() removes it); say where and what to do
            raise StoreError(
                f"{stage}/{key}: {os.strerror(e.errno).lower()} writing {e.filename or store.home}: free space there "
                f"or set LMFORGE_HOME to a larger disk; nothing was published"
            ) from e
        shutil.rmtree(work_dir, ignore_errors=True)
        artifact = store.get(stage, key)
        assert artifact is not None
        logger.info("built %s/%s in %.1fs → %s", stage, key, time.time() - t0, artifact.path)
        return artifact


def _log_why_built(store: ArtifactStore, stage: str, key: str, manifest: dict[str, Any], logger) -> None:
    """Compare with the stage's newest intact artifact: which config, code or inputs changed."""
    previous = [
        (m.get("created", ""), a.key, m)
        for a in store.list()
        if a.stage == stage and (m := read_manifest(a.path)) is not None
    ]
    if not previous:
        logger.info("building %s/%s (no earlier %s artifact)", stage, key, stage)
        return
    _, old_key, old = max(previous, key=lambda p: (p[0], p[1]))
    reasons = differences(old, manifest) or ["--force"]
    logger.info("building %s/%s; differs from %s/%s in: %s", stage, key, stage, old_key, "; ".join(reasons[:8]))
