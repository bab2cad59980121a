"""The `default` deployment of every stage in the registry, with parameters that run on the sample data."""

from __future__ import annotations

from prefect.deployments.runner import RunnerDeployment

from flows.registry import STAGES


def default_deployments() -> list[RunnerDeployment]:
    return [
        spec.flow.to_deployment(name="default", parameters=spec.default_parameters(), description=spec.description)
        for spec in STAGES.values()
    ]
