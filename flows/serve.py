"""`lmforge serve`: every stage as a deployment named `default`, in one process."""

from __future__ import annotations

import os

from flows.processes import route_library_logs

route_library_logs()  # before Prefect reads its logging settings

import httpx  # noqa: E402
from prefect import serve  # noqa: E402
from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: E402

from flows.api_server import LocalServer, user_api_url  # noqa: E402
from flows.deployments import default_deployments  # noqa: E402
from flows.store import lmforge_home  # noqa: E402

HOW = "start one with `lmforge server start` (or run `prefect server start` and set PREFECT_API_URL to its /api URL)"


def check_server() -> str:
    """The server to serve on (PREFECT_API_URL, else `lmforge server start`'s); fail fast, with the fix, when none answers."""
    url = user_api_url() or LocalServer(lmforge_home()).url()
    if not url:
        raise ConnectionError(f"no Prefect server to serve on (PREFECT_API_URL is unset and `lmforge server` is not running): {HOW}")
    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=3).raise_for_status()
    except httpx.HTTPError as e:
        raise ConnectionError(f"Prefect server at {url} is not reachable ({type(e).__name__}): {HOW}") from None
    return url


def serve_all() -> None:
    url = check_server()
    deployments = default_deployments()
    print(f"serving {len(deployments)} deployments against {url}: " + ", ".join(f"{d.flow_name}/{d.name}" for d in deployments), flush=True)
    os.environ["PREFECT_API_URL"] = url  # the runner's flow-run processes read the environment
    with temporary_settings(updates={PREFECT_API_URL: url}):
        serve(*deployments)
