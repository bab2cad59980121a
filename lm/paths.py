"""Where the sample data lives: `$LMFORGE_DATA`, else `../shared/data` beside the repo.

In `lm/`, which every other package may import, so library code (rl tasks, benchmarks) and flows share it
without a library package depending on the Prefect layer.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    return Path(os.environ.get("LMFORGE_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()
