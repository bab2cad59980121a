"""`lmforge serve`: every stage as a deployment named `default`, in one process."""

from __future__ import annotations

import logging
import os
import threading
from contextlib import suppress

from flows.processes import route_library_logs, set_stop_message, stop_descendants

route_library_logs()  # before Prefect reads its logging settings

from prefect import serve  # noqa: E402
from prefect.context import refresh_global_settings_context  # noqa: E402

from flows.api_server import API_TIMEOUT_S, LocalServer, answers_within, healthy, user_api_url  # noqa: E402
from flows.deployments import default_deployments  # noqa: E402
from flows.store import lmforge_home  # noqa: E402

API_POLL_S = 2.0
API_MISSES = 3  # health checks failed in a row before serve gives up (~6 s when nothing listens)
START_WAIT_S = 20.0  # how long serve waits for a slow server to answer its first health check
HOW = "start one with `lmforge server start` (or run `prefect server start` and set PREFECT_API_URL to its /api URL)"


def check_server() -> str:
    """The server to serve on (PREFECT_API_URL, else `lmforge server start`'s); fail fast, with
    the fix, when none answers."""
    url = user_api_url() or LocalServer(lmforge_home()).url()
    if not url:
        raise ConnectionError(
            f"no Prefect server to serve on (PREFECT_API_URL is unset and `lmforge server` is not running): {HOW}"
        )
    if not answers_within(url.rstrip("/"), START_WAIT_S):
        raise ConnectionError(f"Prefect server at {url} is not answering: {HOW}")
    return url


def _exit_api_gone(url: str, what: str) -> None:
    """One line, the descendants stopped, exit 1 without Prefect's exit hooks (they would report
    to the API that is gone)."""
    with suppress(OSError):
        line = f"the Prefect API at {url} {what}: serve exits (start the server again, then `lmforge serve`)"
        os.write(2, f"{line}\n".encode())
    stop_descendants()
    os._exit(1)


def serve_all() -> None:
    """Serve until stopped. The runner runs in a thread, so its own SIGTERM handler (a graceful
    shutdown that reports to the API, and hangs for minutes when the API is gone) is never
    installed: the CLI's handler prints `server stopped` and stops the flow runs in seconds.
    If the API stops answering, serve says so in one line and exits (status 1): restart it
    once the server is back."""
    url = check_server()
    deployments = default_deployments()
    print(
        f"serving {len(deployments)} deployments against {url}: "
        + ", ".join(f"{d.flow_name}/{d.name}" for d in deployments),
        flush=True,
    )
    os.environ["PREFECT_API_URL"] = url  # the runner's flow-run processes read the environment
    refresh_global_settings_context()
    set_stop_message("server stopped")
    _warnings_without_tracebacks()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            serve(*deployments)
        except Exception as e:  # noqa: BLE001 - said in one line below, not as the thread's traceback
            failed.append(e)

    runner = threading.Thread(target=run, name="prefect-serve", daemon=True)
    runner.start()
    misses = 0
    while runner.is_alive():
        runner.join(API_POLL_S)
        if not runner.is_alive():
            break
        misses = 0 if healthy(url, timeout_s=API_TIMEOUT_S) else misses + 1
        if misses >= API_MISSES:
            _exit_api_gone(url, "stopped answering")
    if failed:  # registering the deployments (or polling for runs) failed: the API went away mid-way
        e = failed[0]
        _exit_api_gone(url, f"failed while serving the deployments ({type(e).__name__}: {str(e)[:200]})")


def _warnings_without_tracebacks() -> None:
    """Prefect's runner logs a lost API connection as a warning with a traceback (its websocket, its
    polls); in serve's terminal the warning's line is what helps, the stack is noise."""

    def strip(record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            record.exc_info, record.exc_text = None, None
        return True

    for logger in (logging.getLogger(), logging.getLogger("prefect")):
        for handler in logger.handlers:
            handler.addFilter(strip)
