"""Training-step throughput: lmforge's TransformerLM vs transformers' LlamaForCausalLM.

    .venv/bin/python -m benchmarks.pretrain [--steps 8 --rounds 5]

Same architecture and sizes (hidden 256, 4 layers, 4 heads, SwiGLU 704, vocab 10,000,
context 256, batch 16, fp32), same data; a step is forward + loss + backward + optimizer
step. Timings vary ±15% run to run on a shared CPU, so the implementations are
interleaved round by round and medians compared.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lm.model import ModelConfig, TransformerLM
from lm.optim import AdamW, cross_entropy


def make_ours(cfg: ModelConfig, impl: str):
    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(**{**cfg.to_dict(), "attn_impl": impl}))
    opt = AdamW(model.parameters(), lr=1e-4)

    def step(x, y):
        loss = cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def make_hf(cfg: ModelConfig, impl: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    hf_cfg = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff, num_hidden_layers=cfg.num_layers,
                         num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads, max_position_embeddings=cfg.context_length,
                         tie_word_embeddings=False, attn_implementation=impl)
    model = LlamaForCausalLM(hf_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(x, y):
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = ModelConfig(vocab_size=10_000, context_length=256, d_model=256, num_layers=4, num_heads=4, d_ff=704)
    B = 16
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, cfg.vocab_size, (B, cfg.context_length), generator=g)
    y = torch.randint(0, cfg.vocab_size, (B, cfg.context_length), generator=g)
    runners = {"lmforge reference": make_ours(cfg, "reference"), "lmforge sdpa": make_ours(cfg, "sdpa"),
               "HF Llama sdpa": make_hf(cfg, "sdpa"), "HF Llama eager": make_hf(cfg, "eager")}
    for step in runners.values():  # warm-up
        step(x, y)
    rates: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(args.rounds):
        for name, step in runners.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(x, y)
            rates[name].append(args.steps * B * cfg.context_length / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in rates.items()}
    for k, v in med.items():
        print(f"{k:20s} {v:8,.0f} tokens/s  (rounds: {', '.join(f'{r:,.0f}' for r in rates[k])})")
    hf = med["HF Llama sdpa"]
    print(f"ratio lmforge reference / HF sdpa: {med['lmforge reference'] / hf:.2f}x")
    print(f"ratio lmforge sdpa / HF sdpa: {med['lmforge sdpa'] / hf:.2f}x")


if __name__ == "__main__":
    main()
