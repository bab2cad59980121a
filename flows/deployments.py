"""The `default` deployment of every stage, with parameters that run on the sample data."""

from __future__ import annotations

from prefect.deployments.runner import RunnerDeployment

from flows.paths import REPO_ROOT, data_root


def default_deployments() -> list[RunnerDeployment]:
    from flows.clean_data import clean_data

    data = data_root()
    deployments = [
        clean_data.to_deployment(
            name="default",
            parameters={"config": {"inputs": [str(data / "cc-en-jsonl"), str(data / "web-warc-samples")]}},
            description="Clean the sample web data (override config.inputs to clean your own).",
        ),
    ]
    return deployments


__all__ = ["default_deployments", "REPO_ROOT"]
