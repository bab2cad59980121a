"""Stopping the CLI and everything it started: Ctrl-C, SIGTERM and kill -9.

A stage run owns child processes it did not start by hand: Prefect's temporary API
server (ephemeral mode), process-pool workers, multiprocessing's resource tracker.

- Ctrl-C / SIGTERM: the terminal signals the whole process group, so the temporary
  server dies at the same instant as the run; every later Prefect call would fail and
  log a traceback. The handler instead prints one line, stops the children (SIGTERM,
  then SIGKILL after a grace period) and exits at once (130 for SIGINT, 143 for SIGTERM).
  Nothing half-built is ever published (artifacts are renamed into place whole) and
  resumable state (pretrain checkpoints, finished partitions) stays in the work dir.
- kill -9 of the CLI: no handler runs, so a small watchdog process, started first,
  polls the CLI; it remembers the CLI's descendants and, once the CLI is gone, kills
  the ones still alive (matched by pid and start time, so a reused pid is never hit),
  except those started to outlive it (`lmforge server start`'s server: DETACHED_ENV).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType

import psutil

GRACE_S = 3.0
POLL_S = 0.5
INTERRUPTED = "interrupted: nothing published; rerun resumes"
# set in the environment of a process meant to outlive the command that started it (`lmforge server start`)
DETACHED_ENV = "LMFORGE_DETACHED"


def route_library_logs() -> None:
    """Library progress lines (BPE summary, "resumed from step N", dedup phases, ...) go through
    Prefect's handlers: shown in the terminal and kept with the flow run in the UI. Call before
    Prefect configures logging."""
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "lmforge")
    logging.getLogger("lmforge").setLevel(logging.INFO)


def stop_descendants(pid: int | None = None, grace_s: float = GRACE_S) -> None:
    """SIGTERM every descendant of `pid` (default: this process), SIGKILL the ones left."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return
    _terminate(children, grace_s)


def _terminate(procs: list[psutil.Process], grace_s: float) -> None:
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def _on_signal(signum: int, frame: FrameType | None) -> None:
    signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C while stopping changes nothing
    try:
        # straight to fd 2: the signal may have landed inside a write to sys.stderr (a log
        # line), whose buffer lock then makes a second write raise "reentrant call"
        with suppress(OSError):
            os.write(2, f"\n{_stop_message}\n".encode())
        stop_descendants()
    finally:  # whatever happened above, this process stops: the signal is ignored from now on
        # os._exit: Prefect's exit hooks would report to the server that just died, one traceback each
        os._exit(128 + signum)


@contextmanager
def sigint_ignored() -> Iterator[None]:
    """Processes started inside this block ignore SIGINT from birth (SIG_IGN survives exec,
    and Python then installs no KeyboardInterrupt handler): the terminal's Ctrl-C reaches
    the whole process group, and the main process stops its workers itself instead of
    each worker printing a traceback of its own.

    This process ignores SIGINT meanwhile too (a disposition is what a child inherits; a blocked
    mask is not: subprocess clears it), so a Ctrl-C in the block would be lost. A sentinel in the
    process group, which does not ignore it, sees it for us: if the sentinel died of SIGINT, the
    stop handler runs as the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = signal.getsignal(signal.SIGINT)
    sentinel = (
        subprocess.Popen(["sleep", "86400"], stdin=subprocess.DEVNULL, preexec_fn=_default_sigint)
        if handler is _on_signal
        else None
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        if sentinel is not None:
            caught = sentinel.poll() == -signal.SIGINT
            if not caught:
                sentinel.kill()
            sentinel.wait()
            if caught:
                _on_signal(signal.SIGINT, None)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


_handled: list[int] = []  # the signals this process stops on (set by the CLI)
_stop_message = INTERRUPTED  # the one line a stop prints (a stage's by default)


def set_stop_message(message: str) -> None:
    """What a Ctrl-C or SIGTERM prints: a long-running command that is not a stage (serve) says its own."""
    global _stop_message
    _stop_message = message


def install_stop_handlers() -> None:
    """In the CLI's main process: one-line stop on SIGINT/SIGTERM, and the orphan watchdog.

    A signal ignored at start (a run launched with `nohup` or `&` in a script) stays ignored,
    and then the run moves to a process group of its own: the temporary Prefect server it
    starts installs its own SIGINT handler (uvicorn), so a Ctrl-C meant for the script
    around it would otherwise stop the server under a run that was told to ignore it.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _on_signal)
            _handled.append(sig)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        with suppress(OSError):  # a session leader cannot move, and needs no move
            os.setpgid(0, 0)
    start_watchdog()


def reassert_stop_handlers() -> None:
    """Prefect's flow engine swaps in its own SIGTERM handler, which reports a crash to the
    API, the same API the signal just stopped, and hangs. A stage build puts ours back."""
    if threading.current_thread() is threading.main_thread():
        for sig in _handled:
            signal.signal(sig, _on_signal)


def start_watchdog() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", f"from flows.processes import watch; watch({os.getpid()})"],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # its own session: the terminal's Ctrl-C never reaches it


def watch(parent_pid: int) -> None:
    """Until `parent_pid` exits, remember its descendants; then stop the ones still running."""
    try:
        parent = psutil.Process(parent_pid)
    except psutil.NoSuchProcess:
        return
    known: dict[tuple[int, float], psutil.Process] = {}
    while True:
        try:
            children = parent.children(recursive=True)
            if not parent.is_running() or parent.status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        for c in children:
            try:
                key = (c.pid, c.create_time())
                if key not in known and c.environ().get(DETACHED_ENV) != "1":
                    known[key] = c
            except psutil.Error:
                pass
        time.sleep(POLL_S)
    # psutil.Process.is_running compares start times: a pid reused since is not ours
    orphans = [p for p in known.values() if p.is_running() and p.pid != os.getpid()]
    if orphans:
        _terminate(orphans, GRACE_S)
