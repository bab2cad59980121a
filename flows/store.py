"""The artifact store: every stage output is `$LMFORGE_HOME/artifacts/<stage>/<key>/`.

An artifact is finished exactly when its directory exists under its final name and holds
`manifest.json`. It is built in a temp dir under the store (same filesystem), fsynced,
its manifest written last, then renamed into place: a run killed half-way leaves only a
`tmp/` entry that nothing ever reads as finished. A per-key file lock makes a second
run of the same stage + config wait for the first and reuse its result.

Locks (flock, released by the kernel when a process dies, so never stale): a build holds
its key's lock exclusively and its temp dir's lock; a stage holds its input artifacts'
locks shared while it runs. `gc` takes the exclusive side without waiting and skips
whatever is in use: no guessing from mtimes.

A hit is served only when `check` finds the manifest readable and every file it lists
present with its size (and, for small artifacts or `verify`, its sha256).

Plain Python (no Prefect), so notebooks and tests can read the store directly.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from common.paths import fsync_path

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


def config_for_key(config: BaseModel | dict[str, Any]) -> Any:
    """The config as it enters the key: fields marked `json_schema_extra={"cache_key": False}`
    (worker counts and other settings that cannot change the output) are left out, at any depth."""
    if isinstance(config, BaseModel):
        fields = type(config).model_fields
        return {
            name: config_for_key(getattr(config, name))
            for name, f in fields.items()
            if not (isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("cache_key") is False)
        }
    if dataclasses.is_dataclass(config) and not isinstance(config, type):  # a nested ModelConfig
        return config_for_key(dataclasses.asdict(config))
    if isinstance(config, dict):
        return {k: config_for_key(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [config_for_key(v) for v in config]
    return json.loads(canonical_json(config))


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
    code_digest: str,
    config: BaseModel | dict[str, Any],
    input_keys: list[str],
    raw_fingerprints: list[dict[str, Any]] | None = None,
) -> str:
    """Hash of stage, code fingerprint (flows/fingerprint.py), output-shaping config, inputs."""
    payload = {
        "stage": stage,
        "code": code_digest,
        "config": config_for_key(config),
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
        m = read_manifest(self.path)
        if m is None:
            raise StoreError(
                f"{self.path / MANIFEST}: missing or not valid JSON (damaged artifact; `lmforge gc` removes it)"
            )
        return m


class StoreError(RuntimeError):
    pass


class NoSuchArtifact(StoreError):
    """A key, prefix or directory that names no finished artifact."""


def kinds_text(kinds: tuple[str, ...]) -> str:
    """("pretrain", "sft", "grpo") → "a pretrain, sft or grpo artifact"."""
    return f"a {', '.join(kinds[:-1])}{' or ' if len(kinds) > 1 else ''}{kinds[-1]} artifact"


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest of an artifact dir, or None when it is missing or unreadable."""
    try:
        m = json.loads((path / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return m if isinstance(m, dict) else None


def manifest_summary(path: Path) -> dict[str, Any]:
    """What a finished artifact's build returned (its manifest's `summary`): its stage's summary rows read it."""
    return json.loads((path / MANIFEST).read_text())["summary"]


# Hits on artifacts whose checksummed files add up to no more than this are sha256-checked.
VERIFY_ON_HIT_BYTES = 64 * 1024 * 1024


def check(artifact: Artifact, deep: bool = False) -> list[str]:
    """Problems that make an artifact unfit to serve; [] when it checks out.

    Always: the manifest parses, names this stage/key, and every listed file exists with its
    size. `deep`: also every recorded sha256.
    """
    m = read_manifest(artifact.path)
    if m is None:
        return [f"{MANIFEST} missing or not valid JSON"]
    if m.get("stage") != artifact.stage or m.get("key") != artifact.key:
        return [f"{MANIFEST} names {m.get('stage')}/{m.get('key')}"]
    problems = []
    for rel, entry in m.get("files", {}).items():
        f = artifact.path / rel
        if not f.is_file():
            problems.append(f"{rel}: missing")
        elif f.stat().st_size != entry.get("size"):
            problems.append(f"{rel}: {f.stat().st_size} bytes, manifest says {entry.get('size')}")
        elif deep and "sha256" in entry and sha256_file(f) != entry["sha256"]:
            problems.append(f"{rel}: sha256 differs from the manifest")
    return problems


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why two manifests' keys differ: config fields, code modules, libraries, inputs."""
    out = [f"config {k}: {a} → {b}" for k, a, b in _flat_diff(old.get("config_key", {}), new.get("config_key", {}))]
    old_code, new_code = old.get("code", {}), new.get("code", {})
    out += [
        f"code {name} changed" for name, _, _ in _flat_diff(old_code.get("modules", {}), new_code.get("modules", {}))
    ]
    out += [
        f"library {name}: {a} → {b}"
        for name, a, b in _flat_diff(old_code.get("libraries", {}), new_code.get("libraries", {}))
    ]
    if old.get("inputs") != new.get("inputs"):
        out.append("input artifacts differ")
    if old.get("raw_inputs") != new.get("raw_inputs"):
        out.append("raw input files differ")
    return out


def _flat_diff(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _flat_diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [(prefix.rstrip("."), a, b)]


def hashed_bytes(manifest: dict[str, Any]) -> int:
    return sum(e["size"] for e in manifest.get("files", {}).values() if "sha256" in e)


class ArtifactStore:
    def __init__(self, home: Path | None = None):
        self.home = (home or lmforge_home()).resolve()
        self.root = self.home / "artifacts"

    # --- lookup -------------------------------------------------------------------------
    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def get(self, stage: str, key: str) -> Artifact | None:
        """The finished artifact (a manifest is there; `check` says whether it is intact)."""
        p = self.path(stage, key)
        return Artifact(stage, key, p) if (p / MANIFEST).is_file() else None

    def find(self, key_or_path: str, kinds: tuple[str, ...] = (), what: str = "it") -> Artifact:
        """Resolve a key (or unique key prefix, or an artifact directory) to an intact artifact,
        of one of the stages `kinds` when given (`what` names the parameter in the error)."""
        artifact = self.locate(key_or_path)
        if kinds and artifact.stage not in kinds:
            raise StoreError(f"{key_or_path} is a {artifact.stage} artifact; {what} takes {kinds_text(kinds)}")
        problems = check(artifact)
        if problems:
            raise StoreError(
                f"artifact {artifact.stage}/{artifact.key} is damaged ({'; '.join(problems[:3])}): "
                f"rerun the stage that made it to rebuild it"
            )
        return artifact

    def locate(self, key_or_path: str) -> Artifact:
        """Resolve a key, unique prefix or directory to an artifact, intact or not."""
        p = Path(key_or_path)
        if (p / MANIFEST).is_file():
            m = read_manifest(p)
            if m is None or "stage" not in m or "key" not in m:
                raise StoreError(f"{p / MANIFEST}: not a valid manifest (damaged artifact)")
            return Artifact(m["stage"], m["key"], p.resolve())
        hits = [a for a in self.list() if a.key.startswith(key_or_path)]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise NoSuchArtifact(f"no finished artifact matches {key_or_path!r} under {self.root}")
        raise StoreError(f"{key_or_path!r} is ambiguous: {', '.join(f'{a.stage}/{a.key}' for a in hits)}")

    def _entries(self) -> Iterator[tuple[str, Path]]:
        """(stage, path) of everything in the stage directories."""
        if not self.root.is_dir():
            return
        for stage_dir in sorted(self.root.iterdir()):
            if stage_dir.name == "tmp" or not stage_dir.is_dir():
                continue
            for d in sorted(stage_dir.iterdir()):
                yield stage_dir.name, d

    def list(self) -> list[Artifact]:
        """Every artifact directory, damaged ones included (`check` tells them apart). A symbolic
        link is not one: the store never makes them, and removing one is the user's call."""
        return [Artifact(stage, d.name, d) for stage, d in self._entries() if d.is_dir() and not d.is_symlink()]

    def foreign_entries(self) -> list[Path]:
        """What someone else put in the stage directories: links and plain files (gc leaves them)."""
        return [d for _, d in self._entries() if d.is_symlink() or not d.is_dir()]

    def lineage(self, artifact: Artifact) -> list[Artifact]:
        """The artifact and every artifact it was built from, depth first."""
        seen, order, todo = set(), [], [artifact]
        while todo:
            a = todo.pop()
            if a.key in seen:
                continue
            seen.add(a.key)
            order.append(a)
            for inp in (read_manifest(a.path) or {}).get("inputs", []):
                dep = self.get(inp["stage"], inp["key"])
                if dep is not None:
                    todo.append(dep)
        return order

    # --- locks --------------------------------------------------------------------------
    def _lock_file(self, name: str) -> Path:
        return self.home / "locks" / f"{name}.lock"

    @contextmanager
    def _flock(self, name: str, mode: int) -> Iterator[bool]:
        """Hold flock `mode` on locks/<name>.lock; yields False when LOCK_NB could not get it."""
        path = self._lock_file(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as e:
            raise StoreError(f"artifact root {self.home} is not writable: {e}") from e
        try:
            try:
                fcntl.flock(fd, mode)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing releases the lock

    @contextmanager
    def lock(self, stage: str, key: str) -> Iterator[None]:
        """Exclusive per-(stage, key) lock: a concurrent identical run waits here."""
        with self._flock(f"{stage}-{key}", fcntl.LOCK_EX):
            yield

    @contextmanager
    def using(self, artifacts: list[Artifact]) -> Iterator[None]:
        """Shared locks on input artifacts for as long as a stage reads them: gc skips them."""
        with ExitStack() as stack:
            for a in artifacts:
                stack.enter_context(self._flock(f"{a.stage}-{a.key}", fcntl.LOCK_SH))
                problems = check(a)  # gc may have removed it between lookup and lock
                if problems:
                    raise StoreError(f"input {a.stage}/{a.key} is gone or damaged ({'; '.join(problems[:3])})")
            yield

    # --- writing ------------------------------------------------------------------------
    @contextmanager
    def building(self, stage: str, key: str, manifest: dict[str, Any]) -> Iterator[Path]:
        """Yield an empty temp dir; on clean exit fsync it, write the manifest, rename it in.

        `manifest` may be filled in by the caller inside the block (counts, metrics).
        """
        tmp = self.root / "tmp" / f"{stage}-{key}-{uuid.uuid4().hex[:8]}"
        try:
            with self._flock(f"tmp-{tmp.name}", fcntl.LOCK_EX):  # gc leaves a locked temp dir alone
                try:
                    tmp.mkdir(parents=True)
                except OSError as e:
                    raise StoreError(f"artifact root {self.root} is not writable: {e}") from e
                with self._publishing(stage, key, tmp, manifest) as out:
                    yield out
        finally:
            with suppress(OSError):
                self._lock_file(f"tmp-{tmp.name}").unlink(missing_ok=True)

    @contextmanager
    def _publishing(self, stage: str, key: str, tmp: Path, manifest: dict[str, Any]) -> Iterator[Path]:
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
            fsync_path(final.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def remove(self, artifact: Artifact) -> bool:
        """Delete an artifact unless a running stage holds it (as input or while rebuilding)."""
        with self._flock(f"{artifact.stage}-{artifact.key}", fcntl.LOCK_EX | fcntl.LOCK_NB) as got:
            if got:
                shutil.rmtree(artifact.path, ignore_errors=True)
                self._verified_file(artifact).unlink(missing_ok=True)
            return got

    def branch_heads(self, artifacts: set[Artifact]) -> list[Artifact]:
        """The newest of `artifacts` on each branch: a stage with one config on input branches. The
        same model config on another tokenizer is another branch; a rebuild after a code change, or
        of changed raw files at the same paths, is the same branch, newer (what `gc` may remove)."""
        manifests = {a.key: read_manifest(a.path) or {} for a in artifacts}
        memo: dict[str, str] = {}

        def branch(key: str, stage: str) -> str:
            if key not in memo:
                m = manifests.get(key, {})
                upstream = sorted(branch(i["key"], i["stage"]) for i in m.get("inputs", []))
                raw = sorted(r.get("path", "") for r in m.get("raw_inputs", []))
                memo[key] = canonical_json([stage, m.get("config_key", m.get("config")), raw, upstream])
            return memo[key]

        newest: dict[str, Artifact] = {}
        for a in sorted(artifacts, key=lambda a: (manifests[a.key].get("created", ""), a.key)):
            newest[branch(a.key, a.stage)] = a  # later wins
        return list(newest.values())

    @staticmethod
    def disk_bytes(artifact: Artifact) -> int:
        """What removing it frees (every file on disk, listed in its manifest or not)."""
        return sum(f.stat().st_size for f in artifact.path.rglob("*") if f.is_file())

    # --- verification records ---------------------------------------------------------------
    def _verified_file(self, artifact: Artifact) -> Path:
        return self.home / "verified" / f"{artifact.stage}-{artifact.key}.json"

    def record_verified(self, artifact: Artifact, ok: bool) -> None:
        """`lmforge verify`'s result (every sha256 checked), read back by `verified_status`."""
        path = self._verified_file(artifact)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"at": time.time(), "ok": ok}))

    def verified_status(self, artifact: Artifact) -> str:
        """When every byte was last checked, and whether anything was written since."""
        hint = f"lmforge verify {artifact.key}"
        try:
            record = json.loads(self._verified_file(artifact).read_text())
        except (OSError, ValueError):
            return f"not verified since built: {hint}"
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(record["at"]))
        if not record.get("ok"):
            return f"failed verification {when}"
        newest = max((f.stat().st_mtime for f in artifact.path.rglob("*") if f.is_file()), default=0.0)
        return f"verified {when}" if newest <= record["at"] else f"files written since verified {when}: {hint}"

    def clean_tmp(self) -> int:
        """Remove temp dirs of builds that are no longer running (killed or crashed)."""
        tmp_root, n = self.root / "tmp", 0
        if tmp_root.is_dir():
            for d in tmp_root.iterdir():
                with self._flock(f"tmp-{d.name}", fcntl.LOCK_EX | fcntl.LOCK_NB) as got:
                    if got:
                        shutil.rmtree(d, ignore_errors=True)
                        n += 1
                if got:
                    self._lock_file(f"tmp-{d.name}").unlink(missing_ok=True)
        return n

    def clean_work(self, resumable: bool = False, dry_run: bool = False) -> tuple[list, list]:
        """Work dirs (`work/<stage>-<key>`) of runs that are not running: a run that publishes removes its
        own, so what is here was left by a kill or an error. Removed: the empty ones, those whose artifact
        was published since, and with `resumable` the rest too (pretrain checkpoints, finished partitions,
        TRL checkpoints: what a rerun of that run would resume from). Returns (removed, kept) as
        (name, bytes) pairs; a running stage's (its key's lock held) is neither."""
        work, removed, kept = self.home / "work", [], []
        if not work.is_dir():
            return removed, kept
        for d in sorted(p for p in work.iterdir() if p.is_dir()):
            stage, _, key = d.name.rpartition("-")
            with self._flock(f"{stage}-{key}", fcntl.LOCK_EX | fcntl.LOCK_NB) as got:
                if not got:
                    continue
                size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
                if size == 0 or resumable or self.get(stage, key) is not None:
                    if not dry_run:
                        shutil.rmtree(d, ignore_errors=True)
                    removed.append((d.name, size))
                else:
                    kept.append((d.name, size))
        return removed, kept


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
        json.dump(obj, f, indent=2, default=str, allow_nan=False)  # NaN is not a result
        f.flush()
        os.fsync(f.fileno())


def _fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            fsync_path(p)
    fsync_path(root)
