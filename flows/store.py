"""The artifact store: every stage output is `$LMFORGE_HOME/artifacts/<stage>/<key>/`.

An artifact is finished exactly when its directory exists under its final name and holds
`manifest.json`. It is built in a temp dir under the store (same filesystem), fsynced,
its manifest written last, then renamed into place: a run killed half-way leaves only a
`tmp/` entry that nothing ever reads as finished. A per-key file lock makes a second
run of the same stage + config wait for the first and reuse its result.

Plain Python (no Prefect), so notebooks and tests can read the store directly.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

MANIFEST = "manifest.json"
# Files up to this size get a sha256 in the manifest (and in raw-input fingerprints).
HASH_LIMIT_BYTES = 16 * 1024 * 1024


def lmforge_home() -> Path:
    return Path(os.environ.get("LMFORGE_HOME", ".lmforge")).resolve()


def canonical_json(obj: Any) -> str:
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint_file(path: Path) -> dict[str, Any]:
    """Identity of a raw input file: content hash when small, else size + mtime."""
    st = path.stat()
    fp: dict[str, Any] = {"path": str(path.resolve()), "size": st.st_size}
    if st.st_size <= HASH_LIMIT_BYTES:
        fp["sha256"] = sha256_file(path)
    else:
        fp["mtime_ns"] = st.st_mtime_ns
    return fp


def code_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("lmforge")
    except PackageNotFoundError:
        v = "unknown"
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{v}+{sha}" if sha else v


def compute_key(
    stage: str,
    version: int,
    config: BaseModel | dict[str, Any],
    input_keys: list[str],
    raw_fingerprints: list[dict[str, Any]] | None = None,
) -> str:
    payload = {
        "stage": stage,
        "version": version,
        "config": json.loads(canonical_json(config)),
        "inputs": sorted(input_keys),
        "raw": raw_fingerprints or [],
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Artifact:
    stage: str
    key: str
    path: Path

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.path / MANIFEST).read_text())


class StoreError(RuntimeError):
    pass


class ArtifactStore:
    def __init__(self, home: Path | None = None):
        self.home = (home or lmforge_home()).resolve()
        self.root = self.home / "artifacts"

    # --- lookup -------------------------------------------------------------------------
    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def get(self, stage: str, key: str) -> Artifact | None:
        p = self.path(stage, key)
        return Artifact(stage, key, p) if (p / MANIFEST).is_file() else None

    def find(self, key_or_path: str) -> Artifact:
        """Resolve a key (or unique key prefix, or an artifact directory) to an artifact."""
        p = Path(key_or_path)
        if (p / MANIFEST).is_file():
            m = json.loads((p / MANIFEST).read_text())
            return Artifact(m["stage"], m["key"], p.resolve())
        hits = [a for a in self.list() if a.key.startswith(key_or_path)]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise StoreError(f"no finished artifact matches {key_or_path!r} under {self.root}")
        raise StoreError(f"{key_or_path!r} is ambiguous: {', '.join(a.key for a in hits)}")

    def list(self) -> list[Artifact]:
        if not self.root.is_dir():
            return []
        out = []
        for stage_dir in sorted(self.root.iterdir()):
            if stage_dir.name == "tmp" or not stage_dir.is_dir():
                continue
            for d in sorted(stage_dir.iterdir()):
                if (d / MANIFEST).is_file():
                    out.append(Artifact(stage_dir.name, d.name, d))
        return out

    def lineage(self, artifact: Artifact) -> list[Artifact]:
        """The artifact and every artifact it was built from, depth first."""
        seen, order, todo = set(), [], [artifact]
        while todo:
            a = todo.pop()
            if a.key in seen:
                continue
            seen.add(a.key)
            order.append(a)
            for inp in a.manifest.get("inputs", []):
                dep = self.get(inp["stage"], inp["key"])
                if dep is not None:
                    todo.append(dep)
        return order

    # --- writing ------------------------------------------------------------------------
    @contextmanager
    def lock(self, stage: str, key: str) -> Iterator[None]:
        """Exclusive per-(stage, key) lock: a concurrent identical run waits here."""
        lock_dir = self.home / "locks"
        try:
            lock_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_dir / f"{stage}-{key}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as e:
            raise StoreError(f"artifact root {self.home} is not writable: {e}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextmanager
    def building(self, stage: str, key: str, manifest: dict[str, Any]) -> Iterator[Path]:
        """Yield an empty temp dir; on clean exit fsync it, write the manifest, rename it in.

        `manifest` may be filled in by the caller inside the block (counts, metrics).
        """
        tmp = self.root / "tmp" / f"{stage}-{key}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir(parents=True)
        except OSError as e:
            raise StoreError(f"artifact root {self.root} is not writable: {e}") from e
        t0 = time.time()
        try:
            yield tmp
            manifest.update(
                stage=stage,
                key=key,
                created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                code_version=code_version(),
                wall_time_s=round(time.time() - t0, 3),
                files=_describe_files(tmp),
            )
            _write_json_synced(tmp / MANIFEST, manifest)
            _fsync_tree(tmp)
            final = self.path(stage, key)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # an unfinished leftover without manifest, or --force
                shutil.rmtree(final)
            os.rename(tmp, final)
            _fsync_dir(final.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def remove(self, artifact: Artifact) -> None:
        shutil.rmtree(artifact.path)

    def clean_tmp(self, older_than_s: float = 0) -> int:
        """Remove temp dirs left by killed runs."""
        tmp_root, n = self.root / "tmp", 0
        if tmp_root.is_dir():
            for d in tmp_root.iterdir():
                if time.time() - d.stat().st_mtime >= older_than_s:
                    shutil.rmtree(d, ignore_errors=True)
                    n += 1
        return n


def _describe_files(root: Path) -> dict[str, dict[str, Any]]:
    files = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            size = p.stat().st_size
            entry: dict[str, Any] = {"size": size}
            if size <= HASH_LIMIT_BYTES:
                entry["sha256"] = sha256_file(p)
            files[str(p.relative_to(root))] = entry
    return files


def _write_json_synced(path: Path, obj: Any) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, default=str)
        f.flush()
        os.fsync(f.fileno())


def _fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
