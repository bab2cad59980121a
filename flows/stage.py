"""What every stage flow shares: cache key → hit or build → publish, with Prefect artifacts.

A flow calls `run_stage(...)` with a `build(out_dir, work_dir) -> summary` function from
library code. `out_dir` is the fresh temp dir that becomes the artifact; `work_dir` is a
scratch dir keyed like the artifact that survives a crash (pretraining keeps its
checkpoints there to resume) and is removed once the artifact is published. On a cache hit nothing is built, and the log and a Prefect markdown artifact say
"cache hit: <key>".
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

from flows.store import Artifact, ArtifactStore, StoreError, compute_key, fingerprint_file

# a full disk or quota: the build cannot finish, however often it is retried
DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def artifact_slug(stage: str) -> str:
    # Prefect artifact keys allow lowercase letters, digits and dashes only
    return "".join(c if c.isalnum() else "-" for c in stage.lower())


def run_stage(
    stage: str,
    version: int,
    config: BaseModel,
    build: Callable[[Path, Path], dict[str, Any]],
    inputs: list[Artifact] = (),  # type: ignore[assignment]
    raw_files: list[Path] = (),  # type: ignore[assignment]
    force: bool = False,
    store: ArtifactStore | None = None,
) -> Artifact:
    logger = get_run_logger()
    store = store or ArtifactStore()
    fingerprints = [fingerprint_file(Path(f)) for f in raw_files]
    key = compute_key(stage, version, config, [a.key for a in inputs], fingerprints)
    with store.lock(stage, key):
        existing = store.get(stage, key)
        if existing is not None and not force:
            logger.info("cache hit: %s/%s (%s)", stage, key, existing.path)
            create_markdown_artifact(
                key=f"{artifact_slug(stage)}-cache",
                markdown=f"**cache hit**: `{stage}/{key}`\n\n`{existing.path}`",
                description=f"{stage}: cache hit",
            )
            return existing
        logger.info("building %s/%s", stage, key)
        manifest: dict[str, Any] = {
            "version": version,
            "config": config.model_dump(mode="json"),
            "inputs": [{"stage": a.stage, "key": a.key} for a in inputs],
            "raw_inputs": fingerprints,
        }
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
            raise StoreError(f"{stage}/{key}: {os.strerror(e.errno).lower()} writing {e.filename or store.home}: free space there "
                             f"or set LMFORGE_HOME to a larger disk; nothing was published") from e
        shutil.rmtree(work_dir, ignore_errors=True)
        artifact = store.get(stage, key)
        assert artifact is not None
        logger.info("built %s/%s in %.1fs → %s", stage, key, time.time() - t0, artifact.path)
        return artifact
