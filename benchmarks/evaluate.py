"""`lmforge evaluate` against `lm_eval run` itself: the same model, tasks, limit and batch size, timed end to end.

    .venv/bin/python -m benchmarks.evaluate [--model HF_DIR] [--limit 200] [--gen-limit 40] [--batch-size 16]

Two workloads: lmforge's `tinystories_core` suite (log-likelihood + 4-way multiple choice,
`--limit` documents a task) and GSM8K 5-shot `generate_until` from the harness's own gsm8k.yaml
(its data moved to the local copy; `--gen-limit` questions). Each command is a fresh process
timed from start to exit, as a user runs it: lm_eval builds its index of every task it ships,
lmforge starts a Prefect flow (a temporary server unless PREFECT_API_URL names one) and writes
a cached artifact; both print the same scores (the script checks). Also timed: each tool at
its own default batch size (lm_eval 1, lmforge 16). Without --model: the rollout benchmark's
7.4M-parameter reference Llama with random weights (it generates to the token limit: the
costliest case for generation).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common.paths import data_root
from lm.harness import HARNESS_DIR

BIN = Path(sys.executable).parent


def gsm8k_copy(folder: Path) -> Path:
    """The harness's gsm8k.yaml with its data location moved to the local GSM8K files."""
    import lm_eval

    src = Path(lm_eval.__file__).parent / "tasks" / "gsm8k" / "gsm8k.yaml"
    lines = [line for line in src.read_text().splitlines() if not line.startswith(("dataset_path:", "dataset_name:"))]
    files = {s: str(data_root() / "gsm8k" / f"{s}.jsonl") for s in ("train", "test")}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "gsm8k.yaml"
    path.write_text("\n".join(["dataset_path: json", f"dataset_kwargs: {{data_files: {json.dumps(files)}}}", *lines]))
    return path


def run(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{r.stderr[-3000:]}")
    return time.perf_counter() - t0, r.stdout


def lm_eval_scores(out: Path) -> dict:
    return json.loads(max(out.rglob("results_*.json")).read_text())["results"]


def compare(model: Path, task: str, include: Path, limit: int, batch: int | None, work: Path, env: dict) -> dict:
    out = work / f"lm_eval-{Path(task).stem}-{batch}"
    cmd = [str(BIN / "lm_eval"), "run", "--model", "hf", "--model_args", f"pretrained={model},dtype=auto"]
    cmd += ["--tasks", task, "--include_path", str(include), "--device", "cpu", "--limit", str(limit)]
    cmd += ["--output_path", str(out)] + (["--batch_size", str(batch)] if batch else [])
    theirs, _ = run(cmd, env)
    home = {**env, "LMFORGE_HOME": str(work / f"home-{Path(task).stem}-{batch}")}
    ours_cmd = [str(BIN / "lmforge"), "evaluate", "--checkpoint", str(model), "--task", task, "--limit", str(limit)]
    ours, stdout = run(ours_cmd + (["--batch-size", str(batch)] if batch else []), home)
    mine = json.loads((Path(stdout.strip().splitlines()[-1]) / "eval.json").read_text())["checkpoints"][0]["results"]
    same = all(mine[t] | {"alias": None} == v | {"alias": None} for t, v in lm_eval_scores(out).items())
    batch_label = batch or "each default"
    return {"task": Path(task).stem, "batch": batch_label, "lm_eval_s": theirs, "lmforge_s": ours, "same": same}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a Hugging Face model folder (default: a random 7.4M Llama)")
    ap.add_argument("--limit", type=int, default=200, help="documents per task of tinystories_core")
    ap.add_argument("--gen-limit", type=int, default=40, help="GSM8K questions (generate_until)")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.model is None:
            from benchmarks.rollouts import reference_model

            args.model = reference_model(work)
        gsm8k = gsm8k_copy(work / "tasks")
        rows = [
            compare(args.model, "tinystories_core", HARNESS_DIR, args.limit, args.batch_size, work, env),
            compare(args.model, "tinystories_core", HARNESS_DIR, args.limit, None, work, env),
            compare(args.model, str(gsm8k), gsm8k.parent, args.gen_limit, args.batch_size, work, env),
        ]
    print(f"{'task':<18} {'batch':>12} {'lm_eval s':>10} {'lmforge s':>10} {'ratio':>6}  same scores")
    for r in rows:
        ratio = r["lm_eval_s"] / r["lmforge_s"]
        times = f"{r['lm_eval_s']:>10.1f} {r['lmforge_s']:>10.1f}"
        print(f"{r['task']:<18} {r['batch']!s:>12} {times} {ratio:>5.2f}x  {r['same']}")
    print("ratio = lm_eval's time / lmforge's (> 1: lmforge is faster)")


if __name__ == "__main__":
    main()
