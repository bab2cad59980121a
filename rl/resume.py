"""Resumable TRL training for `sft` and `grpo`: checkpoints in the stage's work dir, a rerun continues.

The trainer saves every `checkpoint_steps` into `<work_dir>/trl/checkpoint-N` (weights, optimizer,
scheduler, RNG and data position: TRL's `save_steps`, the last one kept), and the per-step metrics
go to `<work_dir>/metrics.jsonl`. A run killed or interrupted leaves both behind (the work dir is
the key's, so only the same settings and inputs find it); its rerun hands the last checkpoint to
`trainer.train(resume_from_checkpoint=...)`, drops the metrics rows logged after it, and so
continues the same trajectory.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger("lmforge.rl.resume")


def checkpoint_arguments(run_dir: Path, checkpoint_steps: int) -> dict:
    """TRL/transformers TrainingArguments for periodic, resumable checkpoints under `run_dir/trl`."""
    return {
        "output_dir": str(run_dir / "trl"),
        "save_strategy": "steps",
        "save_steps": checkpoint_steps,
        "save_total_limit": 1,
    }


def resume_point(run_dir: Path, metrics_path: Path | None) -> str | None:
    """The last checkpoint under `run_dir/trl`, if a previous attempt left one (metrics after it dropped);
    None for a fresh start (any stale metrics removed)."""
    last = complete_checkpoint(run_dir / "trl")
    step = int(Path(last).name.split("-")[-1]) if last else 0
    if metrics_path is not None and metrics_path.exists():
        rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
        metrics_path.write_text("".join(json.dumps(r) + "\n" for r in rows if r.get("step", 0) <= step))
    if last:
        log.info("resuming from %s (step %d)", last, step)
    return last


def complete_checkpoint(trl_dir: Path) -> str | None:
    """The newest `checkpoint-N` that was written to the end: the trainer writes `trainer_state.json` after
    the weights, optimizer and RNG states, so a save cut by a kill has none and is passed over."""
    found = sorted(
        (int(p.name.split("-")[-1]), p) for p in trl_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()
    )
    for _, path in reversed(found):
        if (path / "trainer_state.json").is_file():
            return str(path)
    return None
