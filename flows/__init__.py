"""Prefect flows (one module per stage), the artifact store, deployments and the CLI."""
