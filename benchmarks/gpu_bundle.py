"""The offline GPU kit: one folder that measures every GPU path on a machine with no network.

    .venv/bin/python -m benchmarks.gpu_bundle [--out gpu-bundle] [--python-version 3.12]    # `make gpu-bundle`
    bash gpu-bundle/gpu_check.sh [--device cuda|cpu]                                        # on the GPU machine

The folder holds lmforge's library code, benchmarks and GPU tests (`src/`), wheels for what a CUDA image
with torch and transformers lacks (`wheels/`: pydantic, TRL, datasets and what they need beyond the image,
at the versions this checkout is tested with), a tiny Qwen3-family chat model (`model/`), the few sample
files the GPU tests read (`data/`) and `gpu_check.sh`, which installs the wheels into a temporary directory
and runs `benchmarks/gpu_check.py`. The wheels are for the GPU machine's Python (3.12 on the lent image);
`--python-version` builds a kit for another (the CPU half's test uses this machine's).
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import re
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.family_models import build_model
from common.paths import data_root

REPO = Path(__file__).resolve().parent.parent
# What the GPU run imports beyond the image (lazily too: TRL, datasets inside sft/grpo; pytest for the tests)
NEEDED = ["pydantic", "trl", "datasets", "einops", "pytest"]
# A bare CUDA image with torch and transformers (the lent one has these, and more): their needs are there too,
# except pydantic, which the typer here needs and the image's older typer does not (the lent image lacks it).
# gpu_check.sh installs only the wheels whose distribution the machine lacks, so an image with more is fine.
IMAGE = ["torch", "transformers", "accelerate", "peft", "pandas", "pyarrow"]
NOT_IN_IMAGE = ["pydantic"]
SOURCES = [
    "common",
    "lm",
    "rl",
    "benchmarks",
    "configs/tasks",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/test_lm.py",
]
SAMPLE_FILES = [
    "tinystories-val-sample/tinystories_val.txt",  # the GPU pretraining test's corpus (tests/conftest.py)
    "cs336-a1-fixtures/gpt2_vocab.json",
    "cs336-a1-fixtures/gpt2_merges.txt",
]
# manylinux tags pip matches exactly: the ones wheels on PyPI are built for
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"]
LIMIT_MB = 60


def requirements(dist: str) -> list[str]:
    """The distributions `dist` needs at run time (no extras), as installed here."""
    needs = []
    for spec in md.requires(dist) or []:
        if "extra ==" in spec:
            continue
        needs.append(re.split(r"[\s;<>=!~\[(]", spec, maxsplit=1)[0])
    return needs


def closure(roots: list[str]) -> set[str]:
    """Every installed distribution the roots need, themselves included (names normalised)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = normalise(todo.pop())
        if name in seen:
            continue
        try:
            todo.extend(requirements(name))
        except md.PackageNotFoundError:
            continue  # needed only on another platform or Python
        seen.add(name)
    return seen


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheels_needed() -> dict[str, str]:
    """{distribution: version installed here} for what the GPU run needs and the image lacks."""
    image = closure(IMAGE) - closure(NOT_IN_IMAGE)
    return {name: md.version(name) for name in sorted(closure(NEEDED) - image)}


def download_wheels(pins: dict[str, str], out: Path, python_version: str) -> None:
    """All the pins in one `pip download` (one pip start, one index session: ~4× faster than one call each);
    when that fails, each alone, so that the error names the distribution without a wheel."""
    out.mkdir(parents=True, exist_ok=True)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]

    def download(requirements: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--implementation"]
            + ["cp", "--python-version", python_version, *platforms, "-d", str(out), *requirements],
            capture_output=True,
            text=True,
            check=False,
        )

    if download([f"{name}=={version}" for name, version in pins.items()]).returncode == 0:
        return
    for name, version in pins.items():
        done = download([f"{name}=={version}"])
        if done.returncode != 0:
            raise SystemExit(f"no wheel of {name}=={version} for Python {python_version}: {done.stderr.strip()[-500:]}")


def copy_sources(out: Path) -> None:
    """The tracked files of the library, benchmarks and GPU tests (no compiled extensions: the image's Python
    may differ; lmforge falls back to its Python loops)."""
    listed = subprocess.run(
        ["git", "ls-files", *SOURCES], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in listed:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, out / rel)


def build(out: Path, python_version: str) -> Path:
    if out.exists():
        shutil.rmtree(out)
    copy_sources(out / "src")
    for rel in SAMPLE_FILES:
        (out / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(data_root() / rel, out / "data" / rel)
    build_model("qwen3", data_root(), out / "model")
    pins = wheels_needed()
    download_wheels(pins, out / "wheels", python_version)
    shutil.copy2(REPO / "benchmarks" / "gpu_check.sh", out / "gpu_check.sh")
    size_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    if size_mb > LIMIT_MB:
        raise SystemExit(f"the kit is {size_mb:.0f} MB, over its {LIMIT_MB} MB budget")
    print(f"{out}: {size_mb:.1f} MB, {len(pins)} wheels for Python {python_version} ({', '.join(pins)})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "gpu-bundle")
    ap.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default: the lent image's)")
    args = ap.parse_args()
    build(args.out, args.python_version)


if __name__ == "__main__":
    main()
