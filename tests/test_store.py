"""The artifact store: keys, atomic publish, crash safety, locking, lineage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from pydantic import BaseModel

from flows.store import MANIFEST, ArtifactStore, StoreError, compute_key


class Cfg(BaseModel):
    a: int = 1
    b: str = "x"


def test_key_depends_on_config_inputs_and_version():
    k = compute_key("s", 1, Cfg(), [])
    assert k == compute_key("s", 1, Cfg(), [])
    assert k != compute_key("s", 1, Cfg(a=2), [])
    assert k != compute_key("s", 2, Cfg(), [])
    assert k != compute_key("s", 1, Cfg(), ["abc"])
    assert k != compute_key("t", 1, Cfg(), [])
    assert k != compute_key("s", 1, Cfg(), [], [{"path": "/x", "size": 1}])


def test_publish_is_atomic_and_manifest_describes_files(tmp_path):
    store = ArtifactStore(tmp_path)
    manifest = {"config": {}}
    with store.building("stage", "k1", manifest) as out:
        (out / "data.txt").write_text("hello")
        assert store.get("stage", "k1") is None  # not visible while building
    a = store.get("stage", "k1")
    assert a is not None and (a.path / "data.txt").read_text() == "hello"
    assert a.manifest["files"]["data.txt"]["size"] == 5 and "sha256" in a.manifest["files"]["data.txt"]
    assert store.find("k1").path == a.path


def test_failed_build_leaves_nothing(tmp_path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(RuntimeError):
        with store.building("stage", "k", {}) as out:
            (out / "half").write_text("x")
            raise RuntimeError("boom")
    assert store.get("stage", "k") is None and store.list() == []
    assert not any((tmp_path / "artifacts" / "tmp").iterdir())


def test_kill_9_mid_build_leaves_nothing_finished_and_rerun_completes(tmp_path):
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from flows.store import ArtifactStore
        store = ArtifactStore(Path({str(tmp_path)!r}))
        with store.building("stage", "k", {{}}) as out:
            (out / "part").write_text("half")
            print("building", flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "building"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = ArtifactStore(tmp_path)
    assert store.get("stage", "k") is None and store.list() == []
    with store.building("stage", "k", {}) as out:
        (out / "part").write_text("whole")
    assert (store.get("stage", "k").path / "part").read_text() == "whole"
    assert store.clean_tmp() == 1  # the killed run's temp dir


def test_lock_serialises_identical_builds(tmp_path):
    store = ArtifactStore(tmp_path)
    order = []

    def worker(name):
        with store.lock("s", "k"):
            order.append(f"{name}-in")
            time.sleep(0.2)
            order.append(f"{name}-out")

    threads = [threading.Thread(target=worker, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert order[0][0] == order[1][0] and order[2][0] == order[3][0]


def test_unwritable_root_is_a_clear_error(tmp_path):
    # a regular file where the store root should be: unwritable even for root
    root = tmp_path / "not-a-dir"
    root.write_text("x")
    with pytest.raises(StoreError, match="not writable"):
        with ArtifactStore(root).building("s", "k", {}):
            pass
    with pytest.raises(StoreError, match="not writable"):
        with ArtifactStore(root).lock("s", "k"):
            pass


def test_lineage(tmp_path):
    store = ArtifactStore(tmp_path)
    with store.building("a", "k1", {"inputs": []}):
        pass
    with store.building("b", "k2", {"inputs": [{"stage": "a", "key": "k1"}]}):
        pass
    assert [x.key for x in store.lineage(store.get("b", "k2"))] == ["k2", "k1"]
    assert (store.get("b", "k2").path / MANIFEST).is_file()
