"""Training-step throughput: lmforge's TransformerLM vs transformers' LlamaForCausalLM.

    .venv/bin/python -m benchmarks.pretrain [--steps 8 --rounds 5]      # CPU, 2 threads
    .venv/bin/python -m benchmarks.pretrain --deterministic             # + deterministic mode's cost
    python -m benchmarks.pretrain --device cuda [--batch 16]            # a GPU

A step is forward + loss + backward + gradient clipping + optimizer step, on the same
random tokens, same architecture and shapes for both.

CPU: hidden 256, 4 layers, 4 heads, SwiGLU 704, vocab 10,000, context 256, batch 16,
fp32. lmforge eager (reference and sdpa attention), lmforge compiled (what a long CPU run
uses by default; compile time reported), HF eager and sdpa. Timings vary ±15% run to run on
a shared CPU, so the implementations are interleaved round by round and medians compared.

CUDA: a GPT-2-small-like Llama (`--size 162m`: hidden 768, 12 layers, 12 heads, SwiGLU
2048, vocab 50,304, context 1024) or a GPT-2-medium-like one (`--size 350m`: hidden 1024,
20 layers, 16 heads, SwiGLU 2816), bf16 autocast over fp32 master weights, sdpa (flash)
attention, model and loss compiled for both; lmforge with its own AdamW (`_foreach`), with
and without the fused linear + cross-entropy, HF with `torch.optim.AdamW(fused=True)`. Each runs alone (a GPU is
not shared, and peak memory is then its own), reporting tokens/s, MFU (`lm.accounting`'s
FLOPs over the device's peak bf16) and peak memory.
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from lm.accounting import count, mfu
from lm.determinism import deterministic_mode
from lm.model import ModelConfig, TransformerLM
from lm.optim import clip_grad_norm
from lm.train import PretrainConfig, autocast_for, enable_tf32, make_optimizer, model_loss

Step = Callable[[torch.Tensor, torch.Tensor], None]
CPU_SHAPE = ModelConfig(vocab_size=10_000, context_length=256, d_model=256, num_layers=4, num_heads=4, d_ff=704)
GPU_SHAPES = {  # GPT-2 small- and medium-like Llamas
    "162m": ModelConfig(vocab_size=50_304, context_length=1024, d_model=768, num_layers=12, num_heads=12, d_ff=2048),
    "350m": ModelConfig(vocab_size=50_304, context_length=1024, d_model=1024, num_layers=20, num_heads=16, d_ff=2816),
}


def make_ours(cfg: ModelConfig, impl: str, device: str, precision: str, compile_: bool, fused: bool = False) -> Step:
    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(**{**cfg.to_dict(), "attn_impl": impl})).to(device)
    opt = make_optimizer(model, PretrainConfig(lr=1e-4, compile=compile_))
    if fused:  # as lm.train compiles it: the model alone, the chunked loss as it is
        run, loss_of = (torch.compile(model) if compile_ else model), functools.partial(model_loss, fused=True)
    else:
        run, loss_of = model, (torch.compile(model_loss) if compile_ else model_loss)
    autocast = autocast_for(device, precision)

    def step(x, y):
        with autocast:
            loss = loss_of(run, x, y)
        loss.backward()
        clip_grad_norm(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def make_hf(cfg: ModelConfig, impl: str, device: str, precision: str, compile_: bool) -> Step:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    hf_cfg = LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.context_length,
        tie_word_embeddings=False,
        attn_implementation=impl,
    )
    model = LlamaForCausalLM(hf_cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.startswith("cuda"))

    def hf_loss(x, y):
        logits = model(input_ids=x).logits
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))

    loss_of = torch.compile(hf_loss) if compile_ else hf_loss
    autocast = autocast_for(device, precision)

    def step(x, y):
        with autocast:
            loss = loss_of(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def random_batch(cfg: ModelConfig, batch: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, cfg.vocab_size, (batch, cfg.context_length), generator=g)
    y = torch.randint(0, cfg.vocab_size, (batch, cfg.context_length), generator=g)
    return x.to(device), y.to(device)


def warm_up(name: str, step: Step, x: torch.Tensor, y: torch.Tensor, sync: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    for _ in range(2):  # compiles on the first; the second runs the compiled backward's last pieces
        step(x, y)
    sync()
    seconds = time.perf_counter() - t0
    print(f"{name}: first two steps (compile included) {seconds:.1f} s", flush=True)
    return seconds


def bench_cpu(args) -> None:
    torch.set_num_threads(args.threads)
    cfg, B = CPU_SHAPE, args.batch or 16
    x, y = random_batch(cfg, B, "cpu")
    runners = {
        "lmforge reference": make_ours(cfg, "reference", "cpu", "fp32", False),
        "lmforge sdpa": make_ours(cfg, "sdpa", "cpu", "fp32", False),
        "lmforge sdpa compiled": make_ours(cfg, "sdpa", "cpu", "fp32", True),
        "lmforge fused loss compiled": make_ours(cfg, "sdpa", "cpu", "fp32", True, True),
        "HF Llama sdpa": make_hf(cfg, "sdpa", "cpu", "fp32", False),
        "HF Llama eager": make_hf(cfg, "eager", "cpu", "fp32", False),
    }
    if args.deterministic:  # the same steps under `deterministic: true` (lm/determinism.py), interleaved
        runners["lmforge sdpa deterministic"] = deterministic(make_ours(cfg, "sdpa", "cpu", "fp32", False))
        runners["lmforge sdpa compiled deterministic"] = deterministic(make_ours(cfg, "sdpa", "cpu", "fp32", True))
    for name, step in runners.items():
        warm_up(name, step, x, y, lambda: None)
    rates: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(args.rounds):
        for name, step in runners.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(x, y)
            rates[name].append(args.steps * B * cfg.context_length / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in rates.items()}
    for k, v in med.items():
        print(f"{k:28s} {v:8,.0f} tokens/s  (rounds: {', '.join(f'{r:,.0f}' for r in rates[k])})")
    hf = med["HF Llama sdpa"]
    for k in ("lmforge reference", "lmforge sdpa", "lmforge sdpa compiled", "lmforge fused loss compiled"):
        print(f"ratio {k} / HF sdpa: {med[k] / hf:.2f}x")
    if args.deterministic:
        for k in ("lmforge sdpa", "lmforge sdpa compiled"):
            print(f"ratio {k} deterministic / {k}: {med[k + ' deterministic'] / med[k]:.2f}x")


def deterministic(step: Step) -> Step:
    """`step` run in deterministic mode (entered and left around each step: the settings are global)."""

    def run(x, y):
        with deterministic_mode(True):
            return step(x, y)

    return run


def print_profile(step: Step, x: torch.Tensor, y: torch.Tensor) -> None:
    """Where a step's GPU time goes: the top kernels over three steps."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            step(x, y)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=25, max_name_column_width=70))


def bench_cuda(args) -> None:
    enable_tf32()
    cfg, B = GPU_SHAPES[args.size], args.batch or 16
    x, y = random_batch(cfg, B, args.device)
    name_of_device = torch.cuda.get_device_name(args.device)
    flops_per_token = count(cfg).flops_per_token
    print(
        f"{name_of_device}, torch {torch.__version__}; {count(cfg).params:,} parameters, {flops_per_token:.3g} "
        f"training FLOPs/token; batch {B} × {cfg.context_length}"
    )
    builders = {
        "lmforge (bf16, sdpa, compiled)": lambda: make_ours(cfg, "sdpa", args.device, "bf16", True),
        "lmforge fused loss (bf16, sdpa, compiled)": lambda: make_ours(cfg, "sdpa", args.device, "bf16", True, True),
        "HF Llama (bf16, sdpa, compiled)": lambda: make_hf(cfg, "sdpa", args.device, "bf16", True),
    }
    results = {}
    for name, build in builders.items():
        torch.cuda.reset_peak_memory_stats()
        try:
            step = build()
            warm_up(name, step, x, y, torch.cuda.synchronize)
        except Exception as e:  # one side failing (a transformers API change) still reports the other
            print(f"{name}: failed: {type(e).__name__}: {e}")
            continue
        rates = []
        for _ in range(args.rounds):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(x, y)
            torch.cuda.synchronize()
            rates.append(args.steps * B * cfg.context_length / (time.perf_counter() - t0))
        if args.profile:
            print_profile(step, x, y)
        tps = statistics.median(rates)
        results[name] = tps
        util = mfu(tps, flops_per_token, name_of_device, args.peak_flops)
        print(
            f"{name:32s} {tps:10,.0f} tokens/s  MFU {'n/a' if util is None else f'{util:.1%}'}  "
            f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB  (rounds: "
            f"{', '.join(f'{r:,.0f}' for r in rates)})",
            flush=True,
        )
        del step
        gc.collect()
        torch.cuda.empty_cache()
    hf = results.get("HF Llama (bf16, sdpa, compiled)")
    for name, tps in results.items():
        if hf and name.startswith("lmforge"):
            print(f"ratio {name} / HF: {tps / hf:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, help="sequences per step (default 16)")
    ap.add_argument("--size", choices=sorted(GPU_SHAPES), default="162m", help="CUDA: the model (default 162m)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads")
    ap.add_argument("--deterministic", action="store_true", help="CPU: also lmforge's steps in deterministic mode")
    ap.add_argument("--profile", action="store_true", help="CUDA: print each side's top GPU kernels")
    ap.add_argument("--peak-flops", type=float, help="device peak bf16 FLOP/s for MFU (default: lm.accounting's table)")
    args = ap.parse_args()
    bench_cuda(args) if args.device.startswith("cuda") else bench_cpu(args)


if __name__ == "__main__":
    main()
