"""The pretraining loop: random windows of a token memmap → a trained TransformerLM.

Reads top to bottom like nanoGPT's train.py: config, setup (device, DDP, model,
optimizer, resume), then one loop — set LR, evaluate, micro-steps, clip, step, log,
checkpoint — with an explicit last step. Resuming from a checkpoint restores model,
optimizer, step and every RNG, so the run continues the same trajectory.

Multi-GPU: `torchrun --nproc_per_node=N -m lm.train --data DIR --out DIR [--config F]`
(DDP; gloo on CPU, nccl on CUDA). Each rank samples its own windows (seed + rank).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import math
import os
import random
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm import tqdm

from lm.accounting import count, mfu
from lm.checkpoint import recover_checkpoint, restore_training_state, save_training_state
from lm.determinism import deterministic_mode, deterministic_setting
from lm.fused_loss import fused_linear_cross_entropy
from lm.model import ModelConfig, TransformerLM
from lm.optim import AdamW, clip_grad_norm, cosine_lr, cross_entropy

log = logging.getLogger("lmforge.lm.train")

# torch.compile costs ~10-20 s on CPU and saves ~8% of a step there (BENCHMARKS.md): worth
# it only for runs long enough to repay it
COMPILE_MIN_STEPS_CPU = 1000


class PretrainConfig(BaseModel):
    """Model shape, optimisation and run control for one pretraining run."""

    model_config = ConfigDict(extra="forbid")

    # --- model: its shape (vocab_size comes from the tokenize artifact) ---
    model: ModelConfig = Field(default_factory=ModelConfig)
    # --- batch and length ---
    batch_size: int = Field(32, ge=1)
    grad_accum_steps: int = Field(1, ge=1)
    max_steps: int | None = Field(1000, ge=1)
    max_tokens: int | None = Field(None, ge=1, description="token budget; sets max_steps when given")
    # --- optimisation ---
    lr: float = Field(1e-3, gt=0)
    min_lr: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(100, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float = Field(1.0, gt=0)
    # --- execution ---
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$", description="auto: cuda > mps > cpu")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 autocast on a CUDA GPU that has it, else fp32"
    )
    compile: bool | Literal["auto"] = Field(
        "auto", description=f"auto: on CUDA; on CPU for runs of ≥ {COMPILE_MIN_STEPS_CPU} steps"
    )
    fused_loss: bool = Field(
        False,
        description="cross-entropy fused with the LM head in token chunks: no (tokens × vocabulary) "
        "logits tensor (memory for large vocabularies; BENCHMARKS.md has the CPU figures)",
    )
    peak_flops: float | None = Field(
        None,
        gt=0,
        json_schema_extra={"cache_key": False},
        description="device peak FLOP/s for MFU; None: lm.accounting's table of known GPUs",
    )
    seed: int = 0
    deterministic: bool = deterministic_setting()
    eval_interval: int = Field(100, ge=1)
    eval_batches: int = Field(10, ge=1)
    eval_tasks: list[str] = Field(
        default_factory=list,
        description="lm-eval tasks scored every eval_interval and at the end (names in configs/tasks/harness/ such "
        "as tinystories_core, task files, folders), logged as eval/<task>/<metric>",
    )
    eval_tasks_limit: int | None = Field(200, ge=1, description="documents per eval task (None: all)")
    checkpoint_interval: int = Field(200, ge=1)
    log_interval: int = Field(10, ge=1)
    loggers: list[Literal["wandb", "tensorboard"]] = Field(
        [], json_schema_extra={"cache_key": False}
    )  # they write outside the artifact
    # --- report: continuations written next to the checkpoint at the end ---
    sample_prompts: list[str] = ["Once upon a time", "The little dog"]
    sample_max_tokens: int = Field(60, ge=1)

    @model_validator(mode="after")
    def _check(self) -> PretrainConfig:
        if self.model.vocab_size != ModelConfig.vocab_size:
            raise ValueError("model.vocab_size comes from the tokenize artifact: leave it out")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr {self.min_lr} > lr {self.lr}")
        if self.max_steps is None and self.max_tokens is None:
            raise ValueError("set max_steps or max_tokens")
        if self.eval_tasks:
            from common.configfile import ConfigError
            from lm.harness import load_harness_tasks

            try:  # a task that does not load fails with the config, before any training
                load_harness_tasks(",".join(self.eval_tasks))
            except ConfigError as e:
                raise ValueError(f"eval_tasks: {e}") from None
        return self

    @property
    def context_length(self) -> int:
        return self.model.context_length

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum_steps * self.context_length

    @property
    def total_steps(self) -> int:
        if self.max_tokens is not None:
            return max(1, self.max_tokens // self.tokens_per_step)
        assert self.max_steps is not None
        return self.max_steps

    def model_config_for(self, vocab_size: int) -> ModelConfig:
        return dataclasses.replace(self.model, vocab_size=vocab_size)


class TrainingDiverged(RuntimeError):
    pass


# --- data ---------------------------------------------------------------------------------------
def get_batch(
    data: np.ndarray,
    batch_size: int,
    context_length: int,
    device: str | torch.device,
    rng: np.random.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows: x = data[i : i+T], y = data[i+1 : i+T+1]; (B, T) int64 each."""
    rng = rng or np.random.default_rng()
    if len(data) <= context_length:
        raise ValueError(f"{len(data)} tokens cannot fill a window of {context_length}+1")
    starts = rng.integers(0, len(data) - context_length, size=batch_size)
    idx = starts[:, None] + np.arange(context_length + 1)[None, :]
    window = torch.from_numpy(data[idx].astype(np.int64))
    x, y = window[:, :-1], window[:, 1:]
    if torch.device(device).type == "cuda":  # pinned memory lets the copy overlap compute
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


def open_tokens(data_dir: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    meta = json.loads((data_dir / "meta.json").read_text())
    dtype = np.dtype(meta["dtype"])
    train = np.memmap(data_dir / "train.bin", dtype=dtype, mode="r")
    val = np.memmap(data_dir / "val.bin", dtype=dtype, mode="r")
    return train, val, meta


def check_data_fits(cfg: PretrainConfig, data_dir: Path) -> None:
    """Both splits must hold at least one window of context_length + 1 tokens."""
    train_data, val_data, _ = open_tokens(data_dir)
    for split, data in (("train", train_data), ("validation", val_data)):
        if len(data) <= cfg.context_length:
            raise ValueError(
                f"context_length {cfg.context_length} does not fit the {split} split of {data_dir} "
                f"({len(data)} tokens): lower context_length or tokenize more data"
            )


def pick_device(requested: str = "auto") -> str:
    """Resolve `auto`; a device this machine lacks is a clear error before any work."""
    if requested.startswith("cuda"):
        index = int(requested.partition(":")[2] or 0)
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise ValueError(
                f"device {requested!r}: this machine has {torch.cuda.device_count()} CUDA devices; use device: "
                "auto or cpu"
            )
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps': not available on this machine; use device: auto or cpu")
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_auto(cfg: PretrainConfig) -> PretrainConfig:
    """`device`, `precision` and `compile` with every `auto` decided for this machine (what
    runs, and what a cache key records)."""
    device = pick_device(cfg.device)
    cuda = device.startswith("cuda")
    precision = cfg.precision
    if precision == "auto":
        precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    compile_ = cfg.compile
    if compile_ == "auto":
        compile_ = cuda or (
            device == "cpu" and cfg.total_steps >= COMPILE_MIN_STEPS_CPU and shutil.which("c++") is not None
        )
    return cfg.model_copy(update={"device": device, "precision": precision, "compile": compile_})


def model_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, fused: bool = False) -> torch.Tensor:
    """The training objective: mean next-token cross-entropy; `fused`: computed with the LM
    head in token chunks, never holding the (tokens × vocabulary) logits (lm/fused_loss.py)."""
    if not fused:
        return cross_entropy(model(x), y)
    inner = model
    while hasattr(inner, "module") or hasattr(inner, "_orig_mod"):  # DDP, torch.compile wrappers
        inner = getattr(inner, "module", None) or inner._orig_mod
    return fused_linear_cross_entropy(model(x, head=False), inner.lm_head.weight, y)


def make_optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> AdamW:
    """AdamW with decay on matrices only (not on RMSNorm gains)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=cfg.betas,
        eps=cfg.eps,
        compiled=cfg.compile is True,
    )


def autocast_for(device: str, precision: str):
    """bf16 autocast (fp32 master weights and optimizer state), or nothing for fp32."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


def enable_tf32() -> None:
    """fp32 matmuls outside autocast (the optimizer's, eval in fp32) on TF32 tensor cores."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: np.ndarray, cfg: PretrainConfig, device: str, autocast) -> float:
    """Mean loss over a fixed set of windows (own seed: never disturbs the training RNG)."""
    model.eval()
    rng = np.random.default_rng(12345)
    losses = []
    for _ in range(cfg.eval_batches):
        x, y = get_batch(data, cfg.batch_size, cfg.context_length, device, rng)
        with autocast:
            losses.append(cross_entropy(model(x), y).item())
    model.train()
    return float(np.mean(losses))


class _Loggers:
    """Optional wandb / TensorBoard; never required, off unless asked for."""

    def __init__(self, names: list[str], out_dir: Path, config: dict):
        self.tb = self.wandb = None
        if "tensorboard" in names:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / "tensorboard"))
        if "wandb" in names:
            import wandb

            self.wandb = wandb.init(project="lmforge", config=config)

    def log(self, row: dict) -> None:
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != "step":
                    self.tb.add_scalar(k, v, row["step"])
        if self.wandb is not None:
            self.wandb.log(row, step=row["step"])


# --- the loop -------------------------------------------------------------------------------------
def train(
    cfg: PretrainConfig, data_dir: Path, work_dir: Path, stop_at_step: int | None = None, progress: bool = True
) -> dict:
    """Train (or resume) in `work_dir`: `checkpoint/`, `metrics.jsonl`. Returns a summary.

    `stop_at_step` ends the run early at a checkpoint without changing the schedule, so a
    later call resumes it (how the tests interrupt a run deterministically).
    """
    with deterministic_mode(cfg.deterministic):
        return _train(cfg, data_dir, work_dir, stop_at_step, progress)


def _train(cfg: PretrainConfig, data_dir: Path, work_dir: Path, stop_at_step: int | None, progress: bool) -> dict:
    cfg = resolve_auto(cfg)
    run = start_run(cfg)
    work_dir.mkdir(parents=True, exist_ok=True)
    check_data_fits(cfg, data_dir)
    train_data, val_data, meta = open_tokens(data_dir)
    model, optimizer, data_rng = build_model(cfg, meta["vocab_size"], run)
    counts = count(cfg.model_config_for(meta["vocab_size"]))
    ckpt = work_dir / "checkpoint"
    step, tokens = resume(run, work_dir, model, optimizer, data_rng)
    train_model, loss_of, autocast = training_forward(cfg, model, run)
    if run.master:
        describe_run(cfg, counts, run)
    task_eval = (
        InLoopTasks(cfg, data_dir / "tokenizer", work_dir / "eval-tasks") if cfg.eval_tasks and run.master else None
    )
    last_val, last_tasks = float("nan"), {}
    with StepLog(cfg, work_dir, counts, run, step, tokens, progress) as step_log:
        while step < cfg.total_steps:
            lr = cosine_lr(step, cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.total_steps)
            loss_sum_t, grad_norm_t = train_step(
                cfg, run, model, train_model, loss_of, autocast, optimizer, lr, train_data, data_rng
            )
            step += 1
            tokens += cfg.tokens_per_step * (torch.distributed.get_world_size() if run.ddp else 1)
            last_step = step == cfg.total_steps
            checkpoint_now = step % cfg.checkpoint_interval == 0 or last_step or step == stop_at_step
            evaluate_now = step % cfg.eval_interval == 0 or last_step
            row: dict = {}
            if step % cfg.log_interval == 0 or evaluate_now or checkpoint_now:
                loss_sum = finite_loss(loss_sum_t, step, ckpt)  # caught before any checkpoint can save its weights
            if evaluate_now:
                last_val = row["val_loss"] = evaluate(model, val_data, cfg, run.device, autocast)
                if task_eval is not None:
                    last_tasks = task_eval(model)
                    row.update(last_tasks)
            if run.master and (step % cfg.log_interval == 0 or row or last_step):
                step_log.write(step, tokens, lr, loss_sum, grad_norm_t, row, last_val)
            step_log.advance()
            if run.master and checkpoint_now:
                save_training_state(ckpt, model, optimizer, step, tokens, data_rng, cfg)
            if step == stop_at_step:
                break
    if not math.isfinite(last_val):  # resumed from the final checkpoint: nothing left to train
        last_val = evaluate(model, val_data, cfg, run.device, autocast)  # same fixed windows, same value as logged
    if run.ddp:
        torch.distributed.destroy_process_group()
    return {
        "steps": step,
        "tokens": tokens,
        "final_val_loss": last_val,
        "params": counts.params,
        "non_embedding_params": counts.non_embedding_params,
        "flops_per_token": counts.flops_per_token,
        "flops": counts.flops_per_token * tokens,
        "finished": step >= cfg.total_steps,
        "cpu_threads": torch.get_num_threads(),  # a CPU run's bits depend on it
        **last_tasks,
    }


@dataclasses.dataclass(frozen=True)
class Run:
    """Where this process trains: its device, its rank, and whether it is one of several (torchrun, DDP)."""

    device: str
    rank: int
    ddp: bool

    @property
    def master(self) -> bool:
        return self.rank == 0


def start_run(cfg: PretrainConfig) -> Run:
    """Join the process group under torchrun (nccl on GPUs, gloo on a CPU; one GPU per rank)."""
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1 or "TORCHELASTIC_RUN_ID" in os.environ
    device = cfg.device
    if ddp:
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda"):
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
            torch.cuda.set_device(device)
    return Run(device, int(os.environ.get("RANK", "0")), ddp)


def build_model(cfg: PretrainConfig, vocab_size: int, run: Run) -> tuple[TransformerLM, AdamW, np.random.Generator]:
    """The model and its optimizer, the same initial weights on every rank (seeded before construction), and
    this rank's own stream of training windows."""
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = TransformerLM(cfg.model_config_for(vocab_size)).to(run.device)
    return model, make_optimizer(model, cfg), np.random.default_rng([cfg.seed, run.rank])


def resume(run: Run, work_dir: Path, model: TransformerLM, optimizer: AdamW, data_rng: np.random.Generator):
    """(step, tokens) of the last checkpoint in `work_dir`, its weights, optimizer and data stream restored, the
    metrics logged after it dropped; (0, 0) and no stale metrics for a fresh run."""
    ckpt, metrics_path = work_dir / "checkpoint", work_dir / "metrics.jsonl"
    if run.master:
        recover_checkpoint(ckpt)  # a swap cut by a kill is finished or undone
    if (ckpt / "state.json").is_file():
        step, tokens = restore_training_state(ckpt, model, optimizer, data_rng, run.device)
        if run.master:
            log.info("resumed from %s at step %d (%d tokens)", ckpt, step, tokens)
            _truncate_metrics(metrics_path, step)
        return step, tokens
    if run.master and metrics_path.exists():
        metrics_path.unlink()
    return 0, 0


def training_forward(cfg: PretrainConfig, model: TransformerLM, run: Run):
    """(the module a step runs: DDP-wrapped on several ranks, compiled when `cfg.compile`; its loss function;
    the autocast context)."""
    train_model: torch.nn.Module = model
    if run.ddp:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[run.device] if run.device.startswith("cuda") else None
        )
    if cfg.fused_loss:  # the fused loss is its own chunked kernel sequence: compile the model alone
        train_model = torch.compile(train_model) if cfg.compile else train_model
        loss_of = functools.partial(model_loss, fused=True)
    else:  # model and loss compiled together: the loss over a large vocabulary is a big share of a step
        loss_of = torch.compile(model_loss) if cfg.compile else model_loss
    if torch.device(run.device).type == "cuda":
        enable_tf32()
    return train_model, loss_of, autocast_for(run.device, cfg.precision)


def describe_run(cfg: PretrainConfig, counts, run: Run) -> None:
    log.info(
        "model: %s params (%s non-embedding), %.3g training FLOPs/token (6N: %.3g); %d steps × %d tokens on %s, %s%s",
        f"{counts.params:,}",
        f"{counts.non_embedding_params:,}",
        counts.flops_per_token,
        counts.flops_per_token_6n,
        cfg.total_steps,
        cfg.tokens_per_step,
        device_name(run.device),
        cfg.precision,
        ", compiled" if cfg.compile else "",
    )


def device_name(device: str) -> str:
    return torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else device


def train_step(cfg, run: Run, model, train_model, loss_of, autocast, optimizer, lr: float, train_data, data_rng):
    """One optimizer step over `grad_accum_steps` micro-batches: (the summed loss, the gradient norm before
    clipping), both left on the device: no `.item()` here, so a GPU never waits for the host."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss_sum = torch.zeros((), device=run.device)
    for micro in range(cfg.grad_accum_steps):
        x, y = get_batch(train_data, cfg.batch_size, cfg.context_length, run.device, data_rng)
        sync = not run.ddp or micro == cfg.grad_accum_steps - 1  # all-reduce once per step
        with nullcontext() if sync else train_model.no_sync(), autocast:
            loss = loss_of(train_model, x, y) / cfg.grad_accum_steps
        loss.backward()
        loss_sum += loss.detach()
    grad_norm = clip_grad_norm(model.parameters(), cfg.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_sum, grad_norm


def finite_loss(loss: torch.Tensor, step: int, ckpt: Path) -> float:
    value = loss.item()
    if not math.isfinite(value):
        raise TrainingDiverged(f"loss became {value} by step {step}; the last good checkpoint is kept at {ckpt}")
    return value


class StepLog:
    """A run's log lines: `metrics.jsonl` (one row a logged step), wandb/tensorboard, and the progress bar, with
    tokens/s and MFU over the steps since the last line (rank 0 writes; every rank's bar is off but rank 0's)."""

    def __init__(self, cfg: PretrainConfig, work_dir: Path, counts, run: Run, step: int, tokens: int, progress: bool):
        self.cfg, self.counts, self.device = cfg, counts, device_name(run.device)
        self.metrics = open(work_dir / "metrics.jsonl", "a")  # noqa: SIM115  closed on leaving the `with`
        self.loggers = _Loggers(cfg.loggers, work_dir, cfg.model_dump()) if run.master else None
        self.bar = tqdm(
            total=cfg.total_steps,
            initial=step,
            desc="pretrain",
            unit="step",
            disable=not (progress and run.master),
            mininterval=1,
        )
        self.t_last, self.tokens_last = time.time(), tokens

    def write(self, step: int, tokens: int, lr: float, loss: float, grad_norm: torch.Tensor, row: dict, val: float):
        now = time.time()
        tps = (tokens - self.tokens_last) / max(now - self.t_last, 1e-9)
        self.t_last, self.tokens_last = now, tokens
        row = {
            "step": step,
            "tokens": tokens,
            "lr": lr,
            "train_loss": loss,
            "grad_norm": grad_norm.item(),
            "tokens_per_s": tps,
            **row,
        }
        if (u := mfu(tps, self.counts.flops_per_token, self.device, self.cfg.peak_flops)) is not None:
            row["mfu"] = u
        self.metrics.write(json.dumps(row) + "\n")
        self.metrics.flush()
        if self.loggers is not None:
            self.loggers.log(row)
        self.bar.set_postfix(loss=f"{loss:.3f}", val=f"{val:.3f}", lr=f"{lr:.2e}", tok_s=f"{tps:,.0f}")

    def advance(self) -> None:
        self.bar.update(1)

    def __enter__(self) -> StepLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
        self.metrics.close()


class InLoopTasks:
    """lm-eval tasks on the model being trained, scored as `lmforge evaluate` scores its export: the weights
    written as a Hugging Face folder, then the harness's own backend on it."""

    def __init__(self, cfg: PretrainConfig, tokenizer_dir: Path, export_dir: Path) -> None:
        from lm.harness import load_harness_tasks

        self.harness = load_harness_tasks(",".join(cfg.eval_tasks))
        self.limit, self.tokenizer_dir, self.export_dir = cfg.eval_tasks_limit, tokenizer_dir, export_dir

    def __call__(self, model: TransformerLM) -> dict[str, float]:
        from lm.harness import evaluate_model_dir, flat_metrics
        from lm.hf_export import export_hf

        t0 = time.time()
        export_hf(model, self.tokenizer_dir, self.export_dir)
        scores = {
            f"eval/{k}": v
            for k, v in flat_metrics(evaluate_model_dir(self.export_dir, self.harness, limit=self.limit)).items()
        }
        log.info("eval tasks in %.1fs: %s", time.time() - t0, ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))
        return scores


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop rows logged after the checkpoint we resume from (they will be logged again)."""
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(r + "\n" for r in rows))


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def main() -> None:
    from common.configfile import pick_section, read_yaml

    p = argparse.ArgumentParser(description="Pretrain a TransformerLM on a tokenize artifact (torchrun-friendly).")
    p.add_argument("--data", type=Path, required=True, help="directory with train.bin, val.bin, meta.json")
    p.add_argument("--out", type=Path, required=True, help="work directory (checkpoint/, metrics.jsonl)")
    p.add_argument("--config", type=Path, help="YAML PretrainConfig")
    p.add_argument("--stop-at-step", type=int)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO)
    cfg = PretrainConfig.model_validate(pick_section(read_yaml(args.config), ["pretrain"]) if args.config else {})
    print(json.dumps(train(cfg, args.data, args.out, args.stop_at_step)))


if __name__ == "__main__":
    main()
