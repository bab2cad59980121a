"""Shared fixtures: the real sample data, an isolated Prefect home and artifact store."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Every test session gets its own Prefect home (DB, settings) before Prefect is imported.
_PREFECT_HOME = tempfile.mkdtemp(prefix="lmforge-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from flows.paths import data_root  # noqa: E402

DATA = data_root()


@pytest.fixture(scope="session")
def data() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"sample data not found at {DATA}: set LMFORGE_DATA to the shared data folder")
    return DATA


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        yield


@pytest.fixture
def lmforge_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "lmforge-home"
    monkeypatch.setenv("LMFORGE_HOME", str(home))
    return home
