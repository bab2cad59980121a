"""`lmforge serve`: every stage as a deployment named `default`, in one process."""

from __future__ import annotations

import os

from flows.processes import route_library_logs

route_library_logs()  # before Prefect reads its logging settings

import httpx  # noqa: E402
from prefect import serve  # noqa: E402
from prefect.settings import PREFECT_API_URL  # noqa: E402

from flows.deployments import default_deployments  # noqa: E402


def check_server() -> str:
    """Fail fast, with the fix, when no Prefect server is reachable."""
    url = PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL")
    how = (
        "start one with `prefect server start --analytics-off` and point lmforge at it with "
        "`prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api`"
    )
    if not url:
        raise ConnectionError(f"no Prefect server configured (PREFECT_API_URL is unset): {how}")
    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=3).raise_for_status()
    except httpx.HTTPError as e:
        raise ConnectionError(f"Prefect server at {url} is not reachable ({type(e).__name__}): {how}") from None
    return url


def serve_all() -> None:
    url = check_server()
    deployments = default_deployments()
    print(f"serving {len(deployments)} deployments against {url}: " + ", ".join(f"{d.flow_name}/{d.name}" for d in deployments), flush=True)
    serve(*deployments)
