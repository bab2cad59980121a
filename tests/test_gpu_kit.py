"""The offline GPU kit (`make gpu-bundle`, benchmarks/gpu_bundle.py): it builds within its size budget, and its
CPU half runs every step from the kit's own folder with the kit's wheels installed and first on the path."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_the_kit_builds_and_its_cpu_half_runs_each_step_from_its_own_wheels(tmp_path):
    from benchmarks.gpu_bundle import LIMIT_MB, build

    python = ".".join(platform.python_version_tuple()[:2])
    kit = build(tmp_path / "kit", python)  # this machine's Python: the CPU half installs the wheels here
    wheels = {w.name.split("-")[0].lower() for w in (kit / "wheels").glob("*.whl")}
    assert {"pydantic", "pydantic_core", "trl", "datasets", "dill", "multiprocess"} <= wheels
    assert not wheels & {"torch", "transformers", "accelerate", "peft", "pandas", "pyarrow"}  # the image's own
    assert sum(f.stat().st_size for f in kit.rglob("*") if f.is_file()) <= LIMIT_MB * 2**20
    assert not list((kit / "src").rglob("*.so"))  # the GPU machine's Python may differ: pure-Python fallbacks

    results = tmp_path / "results.json"
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        ["bash", str(kit / "gpu_check.sh"), "--device", "cpu", "--all-wheels", "--results", str(results)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(results.read_text())
    assert report["environment"]["from_kit"] == ["pydantic", "trl"]  # imported from the kit's wheels
    steps = report["steps"]
    assert set(steps) == {"tests", "pretrain-cpu", "post-training"}
    assert all(s["exit"] == 0 for s in steps.values()), steps
    assert any("passed" in line for line in steps["tests"]["tail"])
    assert any(line.startswith("ratio lmforge fused loss compiled") for line in steps["pretrain-cpu"]["figures"])
    post = json.loads(steps["post-training"]["figures"][0])
    assert {"sft", "grpo", "evaluate"} <= post.keys() and post["grpo"]["s_per_step"] > 0
