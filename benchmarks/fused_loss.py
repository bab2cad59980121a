"""The LM head's loss three ways, each in its own process: lmforge's fused linear + cross-entropy
(token chunks, lm/fused_loss.py), lmforge's unfused loss (full logits, its own backward), and
PyTorch's `F.cross_entropy` on full logits (the peer). Forward + backward time and peak RSS.

    .venv/bin/python -m benchmarks.fused_loss [--tokens 8192] [--d-model 768] [--vocab 50257] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(variant: str, tokens: int, d_model: int, vocab: int, device: str, rounds: int) -> dict:
    import torch
    import torch.nn.functional as F

    from lm.fused_loss import fused_linear_cross_entropy
    from lm.optim import cross_entropy

    torch.manual_seed(0)
    hidden = torch.randn(tokens, d_model, device=device, requires_grad=True)
    weight = (torch.randn(vocab, d_model, device=device) * 0.02).requires_grad_(True)
    targets = torch.randint(0, vocab, (tokens,), device=device)
    loss_of = {
        "fused": lambda: fused_linear_cross_entropy(hidden, weight, targets),
        "unfused": lambda: cross_entropy(hidden @ weight.T, targets),
        "torch": lambda: F.cross_entropy(hidden @ weight.T, targets),
    }[variant]
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(rounds + 1):  # the first round warms up
        hidden.grad = weight.grad = None
        t0 = time.perf_counter()
        loss = loss_of()
        loss.backward()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = (
        torch.cuda.max_memory_allocated() / 2**30
        if device.startswith("cuda")
        else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 2**20
    )
    return {
        "variant": variant,
        "seconds": sorted(times[1:])[len(times[1:]) // 2],
        "peak_gib": peak,
        "loss": loss.item(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=8192)
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.tokens, args.d_model, args.vocab, args.device, args.rounds)))
        return
    print(
        f"{args.tokens} tokens × d_model {args.d_model} → vocab {args.vocab}, {args.device}, fp32, forward + backward"
    )
    print("| loss | median s | peak memory above the inputs (GiB) | loss value |\n|---|---|---|---|")
    for variant in ("fused", "unfused", "torch"):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.fused_loss",
                "--variant",
                variant,
                "--tokens",
                str(args.tokens),
                "--d-model",
                str(args.d_model),
                "--vocab",
                str(args.vocab),
                "--device",
                args.device,
                "--rounds",
                str(args.rounds),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {r['variant']} | {r['seconds']:.2f} | {r['peak_gib']:.2f} | {r['loss']:.5f} |", flush=True)


if __name__ == "__main__":
    main()
