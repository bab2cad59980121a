"""Task-runner choice for the data stages: processes or threads locally, or a Dask cluster.

Not part of any cache key: where work runs must not change what it produces.
"""

from __future__ import annotations

import os
from typing import Literal

from prefect.settings import PREFECT_API_URL
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field

from flows.processes import sigint_ignored


class RunnerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["process", "thread", "dask"] = "process"
    workers: int = Field(2, ge=1)
    dask_address: str | None = Field(None, description="scheduler address; None starts a LocalCluster")


def make_task_runner(cfg: RunnerConfig) -> TaskRunner:
    if cfg.kind == "thread":
        return ThreadPoolTaskRunner(max_workers=cfg.workers)
    if cfg.kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as e:
            raise RuntimeError("runner kind 'dask' needs prefect-dask: pip install 'lmforge[dask]'") from e
        if cfg.dask_address:
            return DaskTaskRunner(address=cfg.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": cfg.workers, "threads_per_worker": 1})
    share_ephemeral_api()
    return InterruptSafeProcessPool(max_workers=cfg.workers)


class InterruptSafeProcessPool(ProcessPoolTaskRunner):
    """Prefect's process pool with every worker started up front, ignoring SIGINT
    (flows/processes.py says why); the CLI's handler stops them on Ctrl-C."""

    def __enter__(self) -> InterruptSafeProcessPool:
        with sigint_ignored():
            runner = super().__enter__()
            # one trivial job per worker: the executor spawns a worker for each while none is idle
            started = [self._executor.submit(os.getpid) for _ in range(self._max_workers)]
        for fut in started:  # waited for outside the block: the workers ignore SIGINT from birth, we need not
            fut.result()
        return runner


def share_ephemeral_api() -> None:
    """Without a Prefect server (ephemeral mode) this process runs a temporary API, and each
    worker process of a process pool would start one of its own (~5 s apiece, measured).
    Point the workers, which inherit the environment, at ours instead."""
    if PREFECT_API_URL.value() or "PREFECT_API_URL" in os.environ:
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the instance this process's client started
    if server.server_process is not None:
        os.environ["PREFECT_API_URL"] = server.api_url
