"""Shared fixtures: the real sample data, an isolated Prefect home and artifact store."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Every test session gets its own Prefect home (DB, settings) before Prefect is imported.
_PREFECT_HOME = tempfile.mkdtemp(prefix="lmforge-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# `make test` runs a test per core (pytest-xdist): one torch thread per test process (and the commands it
# starts), unless the caller says otherwise. Two workers' two-thread OpenMP pools on two cores spin waiting
# for each other: the model families' tests took 52 s on two workers with them, 43 s with one thread each.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from common.paths import data_root  # noqa: E402

DATA = data_root()


@pytest.fixture(scope="session")
def data() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"sample data not found at {DATA}: set LMFORGE_DATA to the shared data folder")
    return DATA


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    # Prefect's default 30 s start-up limit is a speed assumption: on a loaded 2-core machine (the
    # suite beside a demo) the harness's server took longer and ten tests errored; a correctness
    # bound instead, as the CLI's own server start (flows/api_server.py)
    with prefect_test_harness(server_startup_timeout=300):
        yield


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """One real Prefect server for the session's CLI runs (each xdist worker has its own).

    A stage command pointed at it (PREFECT_API_URL) skips starting a temporary server of
    its own, about 12 s per command (17 s → 5 s for a small tokenize). Tests of the temporary server's handling
    (signals, orphans, one server per run) do not use it. Its own PREFECT_HOME: two
    servers never share a SQLite file."""
    import signal
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect-server"))}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 300  # a correctness bound, generous for a slow or busy machine
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.time() < deadline, "the test session's Prefect server did not start"
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


@pytest.fixture
def lmforge_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "lmforge-home"
    monkeypatch.setenv("LMFORGE_HOME", str(home))
    return home


@pytest.fixture
def kill_mid_build():
    """Start an `lmforge` stage command, kill -9 its process group once its artifact is being
    built (a temp dir under the store holds files), and check nothing was published."""
    import json
    import signal
    import subprocess
    import time

    def run(cmd: list[str], env: dict, home: Path, stage: str, timeout: float = 300) -> None:
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        tmp_root = home / "artifacts" / "tmp"
        deadline = time.time() + timeout
        # building: files in its temp dir, or finished partitions in its work dir (clean-data)
        while not (
            any(d.is_dir() and any(d.iterdir()) for d in tmp_root.glob(f"{stage}-*"))
            or any((home / "work").glob(f"{stage}-*/done/*.json"))
        ):
            assert proc.poll() is None, f"{stage} exited ({proc.returncode}) before its build could be killed"
            assert time.time() < deadline, f"{stage} never started building"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        published = [json.loads(m.read_text()) for m in (home / "artifacts" / stage).glob("*/manifest.json")]
        assert not published, f"a killed {stage} run published {published}"

    return run


@pytest.fixture(scope="session")
def token_dir(tmp_path_factory, data) -> Path:
    """A real tokenize output (TinyStories validation sample, vocab 512) built without Prefect."""
    from lm.bpe import train_bpe
    from lm.corpus import encode_corpus
    from lm.tokenizer import Tokenizer

    out = tmp_path_factory.mktemp("tokens")
    src = data / "tinystories-val-sample" / "tinystories_val.txt"
    vocab, merges = train_bpe(src, 512, ["<|endoftext|>"], progress=False)
    Tokenizer(vocab, merges, ["<|endoftext|>"]).save(out / "tokenizer")
    encode_corpus([src], out / "tokenizer", out, val_fraction=0.05, workers=1)
    return out


@pytest.fixture(scope="session")
def addition_model(tmp_path_factory) -> Path:
    """A tiny character-level model pretrained briefly on the addition corpus, exported to HF."""
    from lm.bpe import train_bpe
    from lm.checkpoint import load_model
    from lm.corpus import encode_corpus
    from lm.hf_export import export_hf
    from lm.tokenizer import Tokenizer
    from lm.train import PretrainConfig, train
    from rl.tasks import get_task

    w = tmp_path_factory.mktemp("addition")
    corpus = get_task("addition").write_pretraining_corpus(w / "addition.txt")
    vocab, merges = train_bpe(corpus, 257, ["<|endoftext|>"], progress=False)
    Tokenizer(vocab, merges, ["<|endoftext|>"]).save(w / "tok")
    (w / "arr").mkdir()
    encode_corpus([corpus], w / "tok", w / "arr", 0.02, 1)
    # head_dim 32: the smallest vLLM's CPU attention kernels support
    cfg = PretrainConfig(
        model={"d_model": 64, "num_layers": 2, "num_heads": 2, "context_length": 32},
        batch_size=32,
        max_steps=60,
        warmup_steps=5,
        lr=3e-3,
        eval_batches=2,
        eval_interval=60,
    )
    train(cfg, w / "arr", w / "run", progress=False)
    return export_hf(load_model(w / "run" / "checkpoint"), w / "tok", w / "hf")
