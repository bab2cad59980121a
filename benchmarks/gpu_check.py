"""Every GPU path in one short run, for the minutes a GPU machine is lent (run through the kit's gpu_check.sh,
which benchmarks/gpu_bundle.py writes; see there).

    bash gpu-bundle/gpu_check.sh [--device cuda] [--results gpu_check.json]

Steps, each in its own process with its own time limit (one failing or running out still leaves the
others' figures), the results file rewritten after each:
1. the GPU tests (tests/test_lm.py's CUDA and fused-loss tests);
2. benchmarks/pretrain.py at 162M (batch 32) and 350M: lmforge with and without the fused loss vs HF Llama
   (tokens/s, MFU, peak memory);
3. post-training: the kit's tiny Qwen3-family chat model through sft → grpo → evaluate (`engine:
   transformers`; bf16 on a GPU), seconds and accuracy of each.
`--device cpu` runs the same steps at toy sizes (the kit's CPU half, tested in tests/test_gpu_kit.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

# seconds per step: the whole run fits the ≤ 8 minutes a lent machine can give it
LIMITS_S = {"tests": 120, "pretrain-162m": 150, "pretrain-350m": 120, "post-training": 90}


def step_commands(device: str, model: Path) -> dict[str, list[str]]:
    py = [sys.executable, "-m"]
    post = [*py, "benchmarks.gpu_check", "post-training", "--model", str(model), "--device", device]
    tests = [*py, "pytest", "-q", "-p", "no:cacheprovider", "tests/test_lm.py", "-k", "gpu or cuda or fused"]
    if device == "cpu":
        return {
            "tests": tests,
            "pretrain-cpu": [*py, "benchmarks.pretrain", "--steps", "1", "--rounds", "1", "--batch", "1"],
            "post-training": post,
        }
    bench = [*py, "benchmarks.pretrain", "--device", device, "--steps", "10"]
    return {
        "tests": tests,
        "pretrain-162m": [*bench, "--size", "162m", "--batch", "32", "--rounds", "3"],
        "pretrain-350m": [*bench, "--size", "350m", "--batch", "16", "--rounds", "2"],
        "post-training": post,
    }


def run_step(command: list[str], limit_s: float) -> dict:
    t0 = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit_s, check=False)
        rc, out = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = "timed out", (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
    lines = [line for line in out.splitlines() if line.strip()]
    return {
        "command": " ".join(command[2:]),
        "exit": rc,
        "seconds": round(time.perf_counter() - t0, 1),
        # the figures a benchmark prints, and the end of everything else
        "figures": [line for line in lines if "tokens/s" in line or line.startswith(("ratio", '{"'))],
        "tail": lines[-25:],
    }


def environment(device: str, site: Path | None) -> dict:
    import pydantic
    import transformers
    import trl

    return {
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or "cpu",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        # which came from the kit's wheels (installed into `site`) and which from the machine
        "from_kit": sorted(m.__name__ for m in (pydantic, trl) if site and str(site) in m.__file__),
    }


def post_training(model: Path, device: str, work: Path) -> dict:
    """sft → grpo → evaluate on the kit's chat model and a chat task, with transformers generation."""
    from benchmarks.family_models import CHAT_SUMS
    from rl.evaluate import evaluate_model_dir
    from rl.grpo import GRPOSettings, run_grpo
    from rl.sft import SFTSettings, run_sft
    from rl.tasks import get_task

    gpu = device.startswith("cuda")
    common = dict(task=CHAT_SUMS, engine="transformers", eval_examples=200 if gpu else 8, eval_samples=4)
    out: dict = {"precision": "bf16 autocast" if gpu else "fp32"}
    t0 = time.perf_counter()
    sft = run_sft(
        model, SFTSettings(**common, max_steps=60 if gpu else 2, batch_size=32, learning_rate=1e-3), work / "sft"
    )
    out["sft"] = {"seconds": round(time.perf_counter() - t0, 1), "train_seconds": sft["train_seconds"]}
    out["sft"]["greedy"] = sft["after"]["greedy"]["accuracy"]
    t0 = time.perf_counter()
    grpo_settings = GRPOSettings(**common, max_steps=10 if gpu else 1, prompts_per_step=16 if gpu else 2, group_size=8)
    grpo = run_grpo(work / "sft" / "hf", grpo_settings, work / "grpo")
    steps = grpo_settings.max_steps
    out["grpo"] = {"seconds": round(time.perf_counter() - t0, 1), "s_per_step": round(grpo["train_seconds"] / steps, 2)}
    out["grpo"] |= {m: grpo["after"][m]["accuracy"] for m in ("greedy", "sampled")}
    t0 = time.perf_counter()
    scores = evaluate_model_dir(
        work / "grpo" / "hf", get_task(CHAT_SUMS), "test", common["eval_examples"], 0, "transformers", 4
    )
    out["evaluate"] = {"seconds": round(time.perf_counter() - t0, 1), "greedy": scores["greedy"]["accuracy"]}
    if gpu:
        out["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", default="all", choices=["all", "post-training"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", type=Path, required=True, help="the kit's model folder")
    ap.add_argument("--results", type=Path, default=Path("gpu_check.json"))
    ap.add_argument("--site", type=Path, help="where gpu_check.sh installed the kit's wheels")
    args = ap.parse_args()
    if args.what == "post-training":
        import tempfile

        with tempfile.TemporaryDirectory() as work:
            print(json.dumps(post_training(args.model, args.device, Path(work))))
        return
    results = {"environment": environment(args.device, args.site), "steps": {}}
    for name, command in step_commands(args.device, args.model).items():
        print(f"== {name}: {' '.join(command[2:])}", flush=True)
        results["steps"][name] = row = run_step(command, LIMITS_S.get(name, 150))
        print(f"   exit {row['exit']} in {row['seconds']} s", *row["figures"], sep="\n   ", flush=True)
        args.results.write_text(json.dumps(results, indent=2))
    failed = [n for n, r in results["steps"].items() if r["exit"] != 0]
    print(
        f"results: {args.results.resolve()}" + (f"; failed: {', '.join(failed)}" if failed else "; every step passed")
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
