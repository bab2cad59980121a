"""Rollout throughput: vLLM vs transformers `generate`, same model, prompts and sampling.

    .venv/bin/python -m benchmarks.rollouts [--model HF_DIR] [--new-tokens 64] [--batches 16 64 256]

Completion tokens per second at 16, 64 and 256 prompts: sampling at temperature 1,
`ignore_eos` so both engines generate exactly --new-tokens per prompt. vLLM's engine
start is reported separately, and so is where vLLM's time goes: the same batch asked for
one token (prefill, the first sampled token and the per-request overhead) against the
rest (decode). Both engines are loaded the way GRPO and evaluation load
them (`rl.generation`). Without --model, the model is near the issue's reference size: a
Llama of hidden 256, 4 layers, 4 heads (head_dim 64) with a BPE trained here on the
TinyStories sample (asked for 10,000 tokens, the sample yields 8,173), 7.4M parameters;
its weights are random, which does not change the cost of a token.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from common.paths import data_root
from rl.generation import generate_transformers, generate_vllm, load_transformers, load_vllm


def reference_model(work: Path) -> Path:
    from lm.bpe import train_bpe
    from lm.hf_export import export_hf
    from lm.model import ModelConfig, TransformerLM
    from lm.tokenizer import Tokenizer

    vocab, merges = train_bpe(
        data_root() / "tinystories-train-sample" / "tiny_stories.txt", 10_000, ["<|endoftext|>"], progress=False
    )
    Tokenizer(vocab, merges, ["<|endoftext|>"]).save(work / "tok")
    torch.manual_seed(0)
    model = TransformerLM(
        ModelConfig(vocab_size=len(vocab), context_length=512, d_model=256, num_layers=4, num_heads=4)
    )
    print(f"reference model: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, vocab {len(vocab):,}")
    return export_hf(model, work / "tok", work / "hf")


def prompts_for(n: int, tokenizer) -> list[list[int]]:
    """n story openings as token ids (both engines take ids)."""
    starts = [
        "Once upon a time",
        "The little dog",
        "Lily and Ben went to the park.",
        "One day, a girl named Mia",
        "Tom had a red ball.",
    ]
    return tokenizer([starts[i % len(starts)] for i in range(n)])["input_ids"]


def timed(generate, model, prompts: list[list[int]], new_tokens: int) -> float:
    """Seconds to generate exactly `new_tokens` for every prompt."""
    t0 = time.perf_counter()
    _, lengths = generate(model, prompts, new_tokens, 1.0, 0, ignore_eos=True)
    secs = time.perf_counter() - t0
    assert sum(lengths) == new_tokens * len(prompts), "an engine stopped early"
    return secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a Hugging Face model folder (default: the reference model, built here)")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256])
    ap.add_argument(
        "--vllm-dtype", help="vLLM's precision (default: float32 on a CPU, bfloat16 on a GPU); generate stays as loaded"
    )
    args = ap.parse_args()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or reference_model(Path(tmp))
        t0 = time.perf_counter()
        llm = load_vllm(model_dir, args.vllm_dtype)
        print(f"vLLM engine start: {time.perf_counter() - t0:.1f} s ({device})")
        hf = load_transformers(model_dir)
        if torch.cuda.is_available():
            hf = (hf[0].to("cuda", torch.bfloat16), hf[1])
        generate_vllm(llm, prompts_for(4, hf[1]), 8, 1.0, 0)  # warm-up, both engines
        generate_transformers(hf, prompts_for(4, hf[1]), 8, 1.0, 0)
        print(
            f"{'prompts':>8} {'vLLM tok/s':>12} {'generate tok/s':>15} {'ratio':>7}   "
            f"vLLM: prefill+first token, decode (ms a step)"
        )
        for n in args.batches:
            prompts = prompts_for(n, hf[1])
            v_s = timed(generate_vllm, llm, prompts, args.new_tokens)
            t_s = timed(generate_transformers, hf, prompts, args.new_tokens)
            first_s = timed(generate_vllm, llm, prompts, 1)
            decode_ms = (v_s - first_s) / max(args.new_tokens - 1, 1) * 1e3
            tokens = n * args.new_tokens
            print(
                f"{n:>8} {tokens / v_s:>12,.0f} {tokens / t_s:>15,.0f} {t_s / v_s:>6.2f}x   "
                f"{first_s * 1e3:,.0f} ms ({first_s / v_s:.0%}), {v_s - first_s:.2f} s ({decode_ms:.1f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
