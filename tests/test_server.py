"""The Prefect API under a stage command on a slow or busy machine: the temporary server, `lmforge server`, load."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow

LMFORGE = str(Path(sys.executable).parent / "lmforge")


def _env(lmforge_home: Path, prefect_home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return {
        **env,
        "LMFORGE_HOME": str(lmforge_home),
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_LOGGING_LEVEL": "INFO",
        **extra,
    }


def _tokenize(data: Path, vocab_size: int, env: dict[str, str]) -> subprocess.Popen:
    cmd = [LMFORGE, "tokenize", "--input", str(data / "tinystories-val-sample"), "--vocab-size", str(vocab_size)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _own_lines_only(stderr: str) -> None:
    """Nothing but the command's own lines: no traceback, no server error, no migration failure."""
    for bad in ("Traceback", "uvicorn.error", "alembic", "Error logging to API", "ERROR", "Timed out"):
        assert bad not in stderr, stderr[-3000:]


def test_commands_started_at_once_on_a_fresh_prefect_home_all_succeed_cleanly(tmp_path, data):
    """Three temporary servers on one new database: its migrations are serialised, never raced."""
    env = _env(tmp_path / "home", tmp_path / "fresh-prefect-home")
    procs = [_tokenize(data, 300 + i, env) for i in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        assert out.strip().splitlines()[-1].startswith(str(tmp_path / "home" / "artifacts" / "tokenize"))
        _own_lines_only(err)
        assert err.count("starting a temporary Prefect server") == 1


def test_a_server_that_does_not_answer_in_time_is_one_line_with_the_fix(tmp_path, data):
    env = _env(tmp_path / "home", tmp_path / "prefect", PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")
    p = _tokenize(data, 300, env)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 2 and out == ""
    assert "did not answer within 1 s" in err, err
    assert "lmforge server start" in err and "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in err
    assert "Traceback" not in err
    # the half-started server was stopped: no API server of this LMFORGE_HOME is left running
    assert not _servers_of(tmp_path / "home")


def _servers_of(home: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter():
        try:
            if "prefect.server.api.server:create_app" in " ".join(p.cmdline()) and p.environ().get(
                "LMFORGE_HOME"
            ) == str(home):
                found.append(p)
        except psutil.Error:
            pass
    return found


def test_local_server_is_reused_by_commands_and_survives_them(tmp_path, data):
    home = tmp_path / "home"
    env = _env(home, tmp_path / "prefect")
    run = lambda *args: subprocess.run([LMFORGE, "server", *args], env=env, capture_output=True, text=True, timeout=400)  # noqa: E731
    assert run("status").returncode == 1
    started = run("start")
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip().splitlines()[-1]
    state = json.loads((home / "server" / "server.json").read_text())
    try:
        assert state["url"] == url and "UI http://127.0.0.1:" in started.stderr
        again = run("start")  # a second start: the same server
        assert again.returncode == 0 and "already running" in again.stderr and again.stdout.strip() == url
        # two commands at once share it; neither starts a server of its own; the server outlives both
        procs = [_tokenize(data, 300 + i, env) for i in range(2)]
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err[-3000:]
            _own_lines_only(err)
            assert "starting a temporary Prefect server" not in err and f"View at {url.removesuffix('/api')}" in err
        status = run("status")
        assert status.returncode == 0 and status.stdout.strip() == state["ui"] and "not answering" not in status.stderr
    finally:
        stopped = run("stop")
    assert stopped.returncode == 0 and "server stopped" in stopped.stderr
    assert not psutil.pid_exists(state["pid"]) or psutil.Process(state["pid"]).status() == psutil.STATUS_ZOMBIE


def test_a_crashed_local_server_is_detected_and_replaced(tmp_path):
    home = tmp_path / "home"
    env = _env(home, tmp_path / "prefect")
    run = lambda *args: subprocess.run([LMFORGE, "server", *args], env=env, capture_output=True, text=True, timeout=400)  # noqa: E731
    assert run("start").returncode == 0
    old = json.loads((home / "server" / "server.json").read_text())
    os.killpg(old["pid"], signal.SIGKILL)  # a crash: the pid file stays behind
    time.sleep(0.5)
    status = run("status")
    assert status.returncode == 1 and "not running" in status.stderr
    assert not (home / "server" / "server.json").exists()  # the stale record is gone
    try:
        restarted = run("start")
        assert restarted.returncode == 0 and "started" in restarted.stderr
        assert json.loads((home / "server" / "server.json").read_text())["pid"] != old["pid"]
    finally:
        run("stop")


def _burn() -> None:
    while True:
        pass


def test_two_stage_commands_succeed_beside_two_cpu_burning_processes(tmp_path, data):
    """The loaded-machine check (`make test-loaded` runs it alone): 2 cores, 2 hogs, 2 commands, fresh Prefect home."""
    hogs = [multiprocessing.get_context("spawn").Process(target=_burn, daemon=True) for _ in range(2)]
    for h in hogs:
        h.start()
    try:
        env = _env(tmp_path / "home", tmp_path / "prefect")
        procs = [
            _tokenize(data, 300, env),
            subprocess.Popen(
                [LMFORGE, "clean-data", str(data / "cc-en-jsonl")],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        ]
        for p in procs:
            _, err = p.communicate(timeout=600)
            assert p.returncode == 0, err[-3000:]
            _own_lines_only(err)
    finally:
        for h in hogs:
            h.kill()


def _start_serve(env: dict) -> subprocess.Popen:
    serve = subprocess.Popen(
        [LMFORGE, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    assert serve.stdout is not None
    line = serve.stdout.readline()  # "serving N deployments against URL: ..."
    assert line.startswith("serving "), (line, serve.poll())
    time.sleep(5)  # the runner registers the deployments and polls
    assert serve.poll() is None
    return serve


def test_serve_stops_in_seconds_with_one_line_whether_or_not_its_api_is_there(tmp_path):
    """With the API up, SIGTERM: `server stopped`. With the API stopped first: serve says so and exits, and a
    SIGTERM after that finds nothing left to hang on."""
    env = _env(tmp_path / "home", tmp_path / "prefect")
    run = lambda *args: subprocess.run([LMFORGE, "server", *args], env=env, capture_output=True, text=True, timeout=400)  # noqa: E731
    assert run("start").returncode == 0
    try:
        serve = _start_serve(env)
        t0 = time.time()
        os.killpg(serve.pid, signal.SIGTERM)
        _, err = serve.communicate(timeout=60)
        assert serve.returncode == 128 + signal.SIGTERM and time.time() - t0 < 30
        assert [line for line in err.splitlines() if line.strip()][-1] == "server stopped" and "Traceback" not in err, (
            err[-3000:]
        )

        serve = _start_serve(env)
        run("stop")  # the API goes away under a running serve (a closed terminal, a restart)
        t0 = time.time()
        _, err = serve.communicate(timeout=120)
        assert serve.returncode == 1 and time.time() - t0 < 60
        assert "stopped answering: serve exits" in err and "Traceback" not in err and "ConnectError" not in err, err[
            -3000:
        ]
    finally:
        run("stop")


def test_serve_whose_server_dies_while_it_registers_says_so_in_one_line(tmp_path):
    """The server killed (SIGKILL) the moment serve says what it will serve, while it registers
    the deployments: one line, exit 1, no traceback (it was exit 0 with `server stopped` and a
    97-line httpx.ConnectError traceback)."""
    home = tmp_path / "home"
    env = _env(home, tmp_path / "prefect")
    run = lambda *args: subprocess.run([LMFORGE, "server", *args], env=env, capture_output=True, text=True, timeout=400)  # noqa: E731
    started = run("start")
    assert started.returncode == 0, started.stderr
    server = psutil.Process(int(re.search(r"\(pid (\d+)\)", started.stdout + started.stderr).group(1)))
    try:
        serve = subprocess.Popen([LMFORGE, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert serve.stdout is not None
        line = serve.stdout.readline()
        assert line.startswith("serving "), (line, serve.poll())
        for p in [*server.children(recursive=True), server]:
            p.kill()
        _, err = serve.communicate(timeout=120)
        assert serve.returncode == 1, err[-3000:]
        assert "serve exits" in err and "Traceback" not in err and "server stopped" not in err, err[-3000:]
    finally:
        run("stop")
