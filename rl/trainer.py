"""What sft and grpo share around TRL's trainers: the arguments every tuning run takes, the per-step metrics
file, and the end of a run (the tuned model saved, TRL's checkpoints dropped, the metrics beside the
artifact). Each stage adds only what is its own: its TRL config's other fields, its trainer, its evaluation.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rl.resume import checkpoint_arguments
from rl.tuned_model import save_tuned_model

METRICS = "metrics.jsonl"


def common_arguments(settings: Any, run_dir: Path) -> dict[str, Any]:
    """TRL arguments of every tuning run: resumable checkpoints under `run_dir/trl`, the CPU or a GPU (bf16
    autocast over fp32 weights there), the seed and deterministic mode, progress bars, no reporting service."""
    import torch

    on_gpu = torch.cuda.is_available()
    return {
        **checkpoint_arguments(run_dir, settings.checkpoint_steps),
        "use_cpu": not on_gpu,
        "bf16": on_gpu,
        "seed": settings.seed,
        "full_determinism": settings.deterministic,
        "report_to": "none",
        "disable_tqdm": False,
    }


def metrics_file(
    path: Path, logged: str, extra: Callable[[], dict] = dict, observe: Callable[[dict], None] | None = None
):
    """A trainer callback that appends every logged step holding `logged` ("loss", "reward") to `path` as one
    JSON line, `{"step", **extra(), **logs}`, on rank 0 only; `observe` sees each row first."""
    from transformers import TrainerCallback

    class MetricsFile(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and logged in logs and state.is_world_process_zero:
                row = {"step": state.global_step, **extra(), **logs}
                if observe is not None:
                    observe(row)
                with open(path, "a") as f:
                    f.write(json.dumps(row) + "\n")

    return MetricsFile()


def finish_run(trainer: Any, source: Path, out_dir: Path, run_dir: Path) -> None:
    """Call on every rank after training: the tuned model to `out_dir/hf` (rank 0 writes it), TRL's resumable
    checkpoints dropped (not part of the artifact), the metrics file copied beside the artifact."""
    save_tuned_model(trainer, source, out_dir)
    shutil.rmtree(out_dir / "trl", ignore_errors=True)
    if trainer.accelerator.is_main_process and run_dir != out_dir:
        shutil.copy(run_dir / METRICS, out_dir / METRICS)
