"""GRPO fine-tuning: our `GRPOSettings` mapped onto TRL's `GRPOTrainer`.

GRPO (Shao et al. 2024, DeepSeekMath §4.1): sample a group of G completions per prompt,
advantage = (reward − group mean) / group std, clipped policy-gradient loss, optional KL
to the reference model (β). TRL implements the loss and the rollouts; rollouts come from
vLLM (`use_vllm`, colocate mode) when vLLM is installed, else from transformers
`generate`. The metrics file says which engine generated them.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from lm.determinism import deterministic_mode, deterministic_setting
from rl.evaluate import evaluate, paired_difference, prompt_ids
from rl.generation import left_padding_tokenizer, resolve_engine
from rl.resume import resume_point
from rl.settings import TaskSettings
from rl.trainer import METRICS, common_arguments, finish_run, metrics_file
from rl.tuned_model import LoraSettings, lora_setting
from rl.vllm_cpu import patch_trl_vllm_for_cpu, prepare_cpu_engine


class GRPOSettings(TaskSettings):
    group_size: int = Field(8, ge=2, description="completions sampled per prompt (G)")
    prompts_per_step: int = Field(16, ge=1)
    learning_rate: float = Field(3e-5, gt=0)
    max_steps: int = Field(200, ge=1)
    max_prompt_tokens: int = Field(
        256, ge=1, description="longest prompt allowed; with the completion limit it sizes vLLM's context"
    )
    temperature: float = Field(1.0, gt=0)
    beta: float = Field(0.0, ge=0, description="KL coefficient to the reference model")
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = "dapo"
    epsilon: float = Field(0.2, gt=0, description="PPO-style clip range")
    epsilon_high: float | None = Field(None, gt=0, description="upper clip bound (DAPO's clip-higher); None: epsilon")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="advantage scaling: the group's std, the batch's, or none (Dr. GRPO)"
    )
    mask_truncated_completions: bool = Field(False, description="no loss on completions cut at max_completion_tokens")
    num_iterations: int = Field(1, ge=1, description="policy updates per batch of rollouts (μ)")
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1)
    eval_examples: int = Field(1000, ge=1)
    eval_samples: int = Field(8, ge=1, description="sampled completions per held-out prompt (pass@k up to this k)")
    seed: int = 0
    deterministic: bool = deterministic_setting()
    lora: LoraSettings | None = lora_setting()
    processes: int = Field(
        1,
        ge=1,
        description="training processes (torchrun: gloo on a CPU, NCCL on GPUs), each generating and training on "
        "its share of a step's rollouts; rank 0 evaluates and writes the artifact",
    )
    checkpoint_steps: int = Field(
        50, ge=1, json_schema_extra={"cache_key": False}, description="steps between resumable checkpoints"
    )

    @model_validator(mode="after")
    def _check(self) -> GRPOSettings:
        if self.completion_tokens < 2:
            raise ValueError(f"max_completion_tokens={self.completion_tokens} truncates every answer: use at least 2")
        rollouts = self.prompts_per_step * self.group_size
        if rollouts % self.processes:
            raise ValueError(
                f"a step's {rollouts} rollouts (prompts_per_step × group_size) do not split evenly over "
                f"processes={self.processes}"
            )
        return self

    @property
    def completion_tokens(self) -> int:
        return self.load_task().max_completion_tokens

    @property
    def use_vllm(self) -> bool:
        return resolve_engine(self.engine) == "vllm"


def trl_config(s: GRPOSettings, run_dir: Path, max_model_len: int | None = None):
    """Our settings as TRL's GRPOConfig: one step = prompts_per_step × group_size rollouts.

    `max_model_len` bounds the colocated vLLM's context (and so its KV cache)."""
    import torch
    import trl

    ranks = world_size()
    if (s.prompts_per_step * s.group_size) % ranks:
        raise ValueError(f"a step's {s.prompts_per_step * s.group_size} rollouts do not split over {ranks} processes")
    return trl.GRPOConfig(
        **common_arguments(s, run_dir),
        # a step is the same prompts_per_step × group_size rollouts on any number of processes: each rank
        # generates and trains on its share (TRL gathers the rewards so that groups may straddle ranks)
        per_device_train_batch_size=s.prompts_per_step * s.group_size // ranks,
        # rank 0 evaluates alone before training and the others wait for it at the first collective
        ddp_timeout=6 * 3600,
        num_generations=s.group_size,
        gradient_accumulation_steps=1,
        learning_rate=s.learning_rate,
        lr_scheduler_type="constant",
        max_steps=s.max_steps,
        max_completion_length=s.completion_tokens,
        temperature=s.temperature,
        top_p=1.0,
        beta=s.beta,
        loss_type=s.loss_type,
        epsilon=s.epsilon,
        epsilon_high=s.epsilon_high,
        scale_rewards=s.scale_rewards,
        mask_truncated_completions=s.mask_truncated_completions,
        num_iterations=s.num_iterations,
        reward_weights=[r.weight for r in s.load_task().rewards],
        use_vllm=s.use_vllm,
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=s.vllm_gpu_memory_utilization,
        vllm_max_model_length=max_model_len,
        # TRL corrects for vLLM sampling from a different (bf16) policy with an extra forward pass of
        # the whole batch every step. On a CPU our rollouts are float32 from the synced policy itself
        # (rl/vllm_cpu.py; log-probs equal to ~1e-6, tests/test_rl.py), so the ratio is 1 and that
        # forward was ~a quarter of a step (BENCHMARKS.md, "a GRPO step"). With num_iterations > 1
        # TRL still computes the old log-probs it then needs.
        vllm_importance_sampling_correction=torch.cuda.is_available(),
        logging_steps=1,
    )


def world_size() -> int:
    """Processes in this run: torchrun's WORLD_SIZE, 1 outside a distributed launch."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def build_trainer(model_dir: Path, settings: GRPOSettings, run_dir: Path, callbacks: list | None = None):
    """TRL's `GRPOTrainer` on the task's train split, its rollouts from vLLM when `settings.use_vllm`."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer

    if settings.use_vllm:
        patch_trl_vllm_for_cpu()
    task = settings.load_task()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32")
    if settings.use_vllm:  # fail here, not deep inside vLLM's engine start
        prepare_cpu_engine(model.config.to_dict(), str(model_dir))
    train = task.load("train")
    max_len = check_lengths(settings, prompt_ids(task, train, tokenizer), model.config.max_position_embeddings)
    return GRPOTrainer(
        model=model,
        reward_funcs=[r.fn for r in task.rewards],
        args=trl_config(settings, run_dir, max_len),
        train_dataset=Dataset.from_list(train),
        processing_class=tokenizer,
        callbacks=callbacks,
        peft_config=settings.lora.peft_config() if settings.lora else None,
    )


def check_lengths(settings: GRPOSettings, prompts: list[list[int]], model_max_len: int) -> int:
    """Fail before training when a prompt or prompt + completion cannot fit; returns the context to give vLLM."""
    longest = max(len(ids) for ids in prompts)
    if longest > settings.max_prompt_tokens:
        raise ValueError(
            f"the longest {settings.load_task().name} prompt is {longest} tokens, over "
            f"max_prompt_tokens={settings.max_prompt_tokens}: raise it"
        )
    if longest + settings.completion_tokens > model_max_len:
        raise ValueError(
            f"the longest {settings.load_task().name} prompt ({longest} tokens) + max_completion_tokens "
            f"({settings.completion_tokens}) "
            f"exceeds the model's context of {model_max_len}: lower max_completion_tokens or use a longer-context model"
        )
    return min(settings.max_prompt_tokens + settings.completion_tokens, model_max_len)


log = logging.getLogger("lmforge.rl.grpo")
NO_SIGNAL = (
    "no learning signal: every completion in every group scored the same; check the prompt format and rewards, "
    "or run `sft` first"
)


class NoSignalWatch:
    """Warn once, after the first steps, when no group had any reward variance (GRPO's advantages are all 0)."""

    STEPS = 3

    def __init__(self) -> None:
        self.steps = 0
        self.none_yet = True  # stays True while every logged step had frac_reward_zero_std == 1
        self.warned = False

    def observe(self, row: dict) -> None:
        self.steps += 1
        self.none_yet = self.none_yet and row.get("frac_reward_zero_std", 0.0) >= 1.0
        if self.none_yet and self.steps >= self.STEPS and not self.warned:
            log.warning("after %d steps: %s", self.steps, NO_SIGNAL)
            self.warned = True


class StepClock:
    """Seconds between consecutive logged steps, the first counted from the start of training."""

    def __init__(self) -> None:
        self.t = time.time()

    def start(self) -> float:
        self.t = time.time()
        return self.t

    def lap(self) -> float:
        now = time.time()
        elapsed, self.t = now - self.t, now
        return elapsed


def run_grpo(model_dir: Path, settings: GRPOSettings, out_dir: Path, work_dir: Path | None = None) -> dict:
    """Evaluate, train with GRPO (resuming from `work_dir`'s last checkpoint), evaluate again; writes `hf/`,
    `metrics.jsonl`, `eval.json` in `out_dir`.

    Both evaluations sample from the trainer's own policy: its colocated vLLM engine (after a
    final weight sync), or its model with `generate`.
    """
    if settings.processes > 1 and "WORLD_SIZE" not in os.environ:
        return launch_ranks(model_dir, settings, out_dir, work_dir or out_dir)
    with deterministic_mode(settings.deterministic):  # restored after: the next stage may run in this process
        return _run_grpo(model_dir, settings, out_dir, work_dir)


def launch_ranks(model_dir: Path, settings: GRPOSettings, out_dir: Path, work_dir: Path) -> dict:
    """Run GRPO as `settings.processes` ranks under torchrun (this module's `main` in each) and return rank 0's
    result. On a CPU the cores are split between the ranks, not oversubscribed (torchrun's default is 1 each)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / "grpo-settings.json"
    config.write_text(settings.model_dump_json())
    threads = str(max(1, (os.cpu_count() or 1) // settings.processes))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", threads)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={settings.processes}"]
    command += ["-m", "rl.grpo", "--model", str(model_dir), "--out", str(out_dir), "--work-dir", str(work_dir)]
    log.info("grpo on %d processes: %s", settings.processes, " ".join(command))
    # the ranks' progress and errors go to stderr; their stdout line is the result, read from eval.json instead
    try:
        done = subprocess.run([*command, "--config", str(config)], env=env, stdout=subprocess.DEVNULL, check=False)
    finally:
        config.unlink()
    if done.returncode != 0:
        raise RuntimeError(
            f"grpo on {settings.processes} processes failed (exit {done.returncode}): see the ranks' errors above"
        )
    return json.loads((out_dir / "eval.json").read_text())


def _run_grpo(model_dir: Path, settings: GRPOSettings, out_dir: Path, work_dir: Path | None) -> dict:
    task = settings.load_task()
    engine = "vllm" if settings.use_vllm else "transformers"
    run_dir = work_dir or out_dir
    watch, clock = NoSignalWatch(), StepClock()
    # every rank resumes from the same checkpoint; rank 0 alone rewrites the metrics file
    resume = resume_point(run_dir, run_dir / METRICS if int(os.environ.get("RANK", "0")) == 0 else None)
    steps = metrics_file(
        run_dir / METRICS, "reward", lambda: {"engine": engine, "step_time_s": clock.lap()}, watch.observe
    )
    trainer = build_trainer(model_dir, settings, run_dir, [steps])
    left_padded = left_padding_tokenizer(model_dir)

    def policy():
        if settings.use_vllm:
            trainer.vllm_generation.sync_weights()  # TRL syncs before each rollout, not after the last step
            return trainer.vllm_generation.llm
        return trainer.model, left_padded

    # under torchrun every rank trains; rank 0 alone evaluates and writes the results
    main_rank = trainer.accelerator.is_main_process
    run_eval = lambda: evaluate(
        policy(), engine, task, "test", settings.eval_examples, settings.seed, settings.eval_samples
    )  # noqa: E731
    before = run_eval() if main_rank else {}
    t0 = clock.start()
    with redirect_stdout(sys.stderr):  # TRL's per-step dicts: stdout holds the artifact path alone
        trainer.train(resume_from_checkpoint=resume)
    train_s = time.time() - t0
    after = run_eval() if main_rank else {}
    finish_run(trainer, Path(model_dir), out_dir, run_dir)
    if not main_rank:
        return {}
    result = {
        "task": task.name,
        "engine": engine,
        "processes": world_size(),
        "train_seconds": round(train_s, 1),
        "steps": settings.max_steps,
        "before": before,
        "after": after,
        # the lift on the same held-out rows, with its 95% interval: whether it is more than noise
        "lift": {m: paired_difference(after[m]["per_row_accuracy"], before[m]["per_row_accuracy"]) for m in after},
        **({"warning": NO_SIGNAL} if watch.none_yet else {}),
    }
    (out_dir / "eval.json").write_text(json.dumps(result, indent=2))
    return result


def main() -> None:
    """`torchrun --nproc_per_node N -m rl.grpo --model DIR --out DIR [--config settings.yaml]` (or with
    `accelerate launch` on GPUs); `processes: N` in the settings starts this itself."""
    import argparse

    from common.configfile import pick_section, read_yaml

    p = argparse.ArgumentParser(description="GRPO-tune a Hugging Face model folder (accelerate-launch friendly).")
    p.add_argument(
        "--model", type=Path, required=True, help="a Hugging Face causal-LM folder (e.g. a pretrain artifact's hf/)"
    )
    p.add_argument("--out", type=Path, required=True, help="output directory (hf/, metrics.jsonl, eval.json)")
    p.add_argument("--config", type=Path, help="YAML GRPOSettings")
    p.add_argument("--work-dir", type=Path, help="resumable checkpoints and metrics (default: --out)")
    args = p.parse_args()
    settings = GRPOSettings.model_validate(
        pick_section(read_yaml(args.config), ["grpo.settings", "grpo"]) if args.config else {}
    )
    args.out.mkdir(parents=True, exist_ok=True)
    result = run_grpo(args.model, settings, args.out, args.work_dir)
    if result:
        print(json.dumps({w: {m: result[w][m]["accuracy"] for m in result[w]} for w in ("before", "after")}))


if __name__ == "__main__":
    main()
