"""The Prefect API a stage command talks to, and `lmforge server start | stop | status`.

A command uses, in this order:
1. the server the user named (`PREFECT_API_URL`, in the environment or a Prefect profile);
2. the reusable local server of `lmforge server start` for this `LMFORGE_HOME`, when it answers;
3. a temporary server for this command alone, stopped when the command ends.

The temporary server is started here rather than by Prefect's ephemeral mode for three
reasons a busy machine exposes: its start time-out is ours (generous, and a time-out is
one line that says what to do, not a stack trace); its output goes to a log file, so its
shutdown after a Ctrl-C never interleaves a traceback with the command's own lines; and
it runs in a session of its own, so the terminal's signal reaches only the command, which
stops it after printing its line (flows.processes).

Every server start on a Prefect home that lmforge has not yet seen migrated holds one
file lock beside the database until the server answers: the first commands on a fresh
home never run the database migrations on the same SQLite file at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from flows.processes import DETACHED_ENV
from flows.store import lmforge_home

# Prefect's own setting stays the way to override; its default (20 s) is what a loaded machine misses
TIMEOUT_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
DEFAULT_START_TIMEOUT_S = 300.0
STOP_GRACE_S = 10.0


class ServerError(RuntimeError):
    """A Prefect server that could not be started or reached; the message is the one line to show."""


def start_timeout_s() -> float:
    value = os.environ.get(TIMEOUT_SETTING)
    try:
        return float(value) if value else DEFAULT_START_TIMEOUT_S
    except ValueError:
        raise ServerError(f"{TIMEOUT_SETTING}={value!r} is not a number of seconds") from None


def prefect_home() -> Path:
    from prefect.settings import PREFECT_HOME

    return Path(PREFECT_HOME.value()).expanduser()


def user_api_url() -> str | None:
    """The server the user configured (environment or active Prefect profile), if any."""
    from prefect.settings import PREFECT_API_URL

    return os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value() or None


def free_port(preferred: int | None = None) -> int:
    if preferred is not None:
        with socket.socket() as s, suppress(OSError):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a port in TIME_WAIT is free
            s.bind(("127.0.0.1", preferred))
            return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


API_TIMEOUT_S = 5.0  # a busy machine's server may be slow to answer; a stopped one refuses at once
REUSE_WAIT_S = 15.0  # how long a command waits for a slow running server before starting its own


def _health(url: str, timeout_s: float) -> bool | None:
    """One health check: True (it answers healthy), False (refused: nothing listens there), None (no healthy
    answer yet: a timeout, an error status)."""
    try:
        return httpx.get(f"{url}/health", timeout=timeout_s).status_code == 200 or None
    except httpx.ConnectError:
        return False
    except httpx.HTTPError:
        return None


def healthy(url: str, timeout_s: float = 2.0) -> bool:
    return _health(url, timeout_s) is True


def answers_within(url: str, seconds: float) -> bool:
    """Health checks until one answers or `seconds` pass; a refused connection (nothing listens)
    is not retried: a loaded machine's server is slow, a stopped one is gone."""
    deadline = time.monotonic() + seconds
    while (answer := _health(url, API_TIMEOUT_S)) is None and time.monotonic() < deadline:
        time.sleep(1.0)
    return answer is True


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def _first_start_serialised() -> Iterator[None]:
    """Hold the Prefect home's start lock while a server starts, unless its database was already
    migrated by this Prefect version (the marker is written once a server under the lock answered)."""
    import prefect

    home = prefect_home()
    marker = home / f".lmforge-migrated-{prefect.__version__}"
    if marker.exists() and (home / "prefect.db").exists():
        yield
        return
    with _flock(home / ".lmforge-server-start.lock"):
        yield
        marker.touch()


class PortTaken(ServerError):
    """The port was free when chosen and taken before the server bound it (another server starting)."""


def _listens_on(pid: int, port: int) -> bool:
    """Whether the process `pid` (or one of its children) listens on `port`: the server that answers
    there is the one just started, not another one that took the port first."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return False
    for p in procs:
        try:
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in p.net_connections("tcp")):
                return True
        except psutil.AccessDenied:  # a system that hides sockets: the health check alone decides
            return True
        except psutil.Error:
            pass
    return False


def _wait_healthy(proc: subprocess.Popen, url: str, port: int, log: Path, what: str) -> None:
    limit = start_timeout_s()
    deadline = time.monotonic() + limit
    while not (healthy(url) and _listens_on(proc.pid, port)):
        if proc.poll() is not None:
            if healthy(url):  # someone else's server answers there: ours could not bind
                raise PortTaken(f"{what}: port {port} was taken by another server while this one started")
            raise ServerError(
                f"{what} exited with code {proc.returncode} before it answered; its log: {log} "
                f"(last line: {_last_line(log)!r})"
            )
        if time.monotonic() > deadline:
            _stop(proc.pid)
            raise ServerError(
                f"{what} did not answer within {limit:g} s (a slow or busy machine; log: {log}): start a reusable "
                f"one with `lmforge server start`, or raise {TIMEOUT_SETTING}"
            )
        time.sleep(0.2)


def _last_line(log: Path) -> str:
    with suppress(OSError):
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1] if lines else ""
    return ""


def _stop(pid: int, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the server's process group (it is its session leader), SIGKILL what is left."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        with suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return
        time.sleep(0.1)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        # a session of its own: the terminal's Ctrl-C reaches the command, which stops this itself
        return subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


# --- the temporary server of one command ------------------------------------------------------------
@contextmanager
def temporary_server() -> Iterator[str]:
    """A Prefect API server (no UI) for the duration of the block; yields its API URL."""
    import prefect

    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    logs = lmforge_home() / "server" / "temporary"
    _remove_logs_of_dead_runs(logs)
    log = logs / f"{os.getpid()}.log"
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(Path(prefect.__file__).parent.parent),
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1"}
    print(
        f"starting a temporary Prefect server for this command on {url} (`lmforge server start` keeps one for "
        "every command)",
        file=sys.stderr,
        flush=True,
    )
    with _first_start_serialised():
        proc = _spawn(args, log, env)
        _wait_healthy(proc, url, port, log, "the temporary Prefect server")
    try:
        yield url
    finally:
        _stop(proc.pid)
    log.unlink(missing_ok=True)


def _remove_logs_of_dead_runs(logs: Path) -> None:
    for log in logs.glob("*.log"):
        if log.stem.isdigit() and not psutil.pid_exists(int(log.stem)):
            log.unlink(missing_ok=True)


# --- the reusable local server ----------------------------------------------------------------------
@dataclass(frozen=True)
class LocalServer:
    """`lmforge server start`'s `prefect server`, one per LMFORGE_HOME: state in server/server.json."""

    home: Path

    @property
    def state_file(self) -> Path:
        return self.home / "server" / "server.json"

    @property
    def log(self) -> Path:
        return self.home / "server" / "server.log"

    def state(self) -> dict | None:
        """The recorded server if its process still runs (same pid and start time); a stale record is removed."""
        try:
            state = json.loads(self.state_file.read_text())
            process = psutil.Process(state["pid"])
            alive = process.create_time() == state["create_time"] and process.status() != psutil.STATUS_ZOMBIE
        except (OSError, ValueError, KeyError, TypeError):
            alive, state = False, None
        except psutil.Error:
            alive = False
        if state is not None and not alive:
            self.state_file.unlink(missing_ok=True)
            return None
        return state

    def url(self) -> str | None:
        """Its API URL when it runs and answers."""
        state = self.state()
        # a loaded machine's server can take seconds to answer: a command that gave up after 2 s
        # started a temporary server of its own beside it
        return state["url"] if state and answers_within(state["url"], REUSE_WAIT_S) else None

    def start(self) -> dict:
        with _flock(self.home / "server" / "start.lock"):  # two `start`s at once: one server
            state = self.state()
            if state is not None:
                return state
            env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", DETACHED_ENV: "1"}
            for attempt in range(3):  # 4200 if free; another port if a server elsewhere took it meanwhile
                port = free_port(4200 if attempt == 0 else None)
                url = f"http://127.0.0.1:{port}/api"
                args = [str(Path(sys.executable).parent / "prefect"), "server", "start"]
                args += ["--host", "127.0.0.1", "--port", str(port)]
                try:
                    with _first_start_serialised():
                        proc = _spawn(args, self.log, env)
                        _wait_healthy(proc, url, port, self.log, f"prefect server (port {port})")
                    break
                except PortTaken:
                    if attempt == 2:
                        raise
            state = {
                "pid": proc.pid,
                "create_time": psutil.Process(proc.pid).create_time(),
                "port": port,
                "url": url,
                "ui": f"http://127.0.0.1:{port}",
                "log": str(self.log),
            }
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(state))
            tmp.replace(self.state_file)
            return state

    def stop(self) -> bool:
        state = self.state()
        if state is None:
            return False
        _stop(state["pid"])
        self.state_file.unlink(missing_ok=True)
        return True


# --- what a command uses --------------------------------------------------------------------------
@contextmanager
def prefect_api() -> Iterator[str]:
    """Point Prefect at the server this command should use (see the module docstring) for the block."""
    from prefect.context import refresh_global_settings_context

    url = user_api_url()
    if url:
        yield url
        return
    url = LocalServer(lmforge_home()).url()
    with nullcontext(url) if url else temporary_server() as url:
        # The environment, then Prefect's process-global settings read anew from it: Prefect's
        # own threads (API log handler, events) and worker processes do not see a contextvar,
        # and without a URL they would start an ephemeral server of their own.
        os.environ["PREFECT_API_URL"] = url
        refresh_global_settings_context()
        try:
            yield url
        finally:
            _drain_prefect_workers()  # its log lines and events reach the server before that stops
            os.environ.pop("PREFECT_API_URL", None)
            refresh_global_settings_context()


def _drain_prefect_workers(timeout_s: float = 10.0) -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with suppress(Exception):  # a worker that never started, or an API already gone: nothing to send
            worker.drain_all(timeout=timeout_s)
