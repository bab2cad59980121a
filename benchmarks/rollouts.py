"""Rollout throughput: vLLM vs transformers `generate`, same model, prompts and sampling.

    VLLM_CPU_KVCACHE_SPACE=1 <python-with-vllm> -m benchmarks.rollouts HF_MODEL_DIR [--new-tokens 64]

Completion tokens per second at 16, 64 and 256 prompts (sampling, temperature 1, no
early stop so both generate exactly --new-tokens each); vLLM's engine start is reported
separately. vllm-cpu cannot share a venv with Prefect 3.9 (fastapi pins conflict), so
run this with a Python that has vLLM (see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def prompts_for(n: int) -> list[str]:
    starts = ["Once upon a time", "The little dog", "Lily and Ben went to the park.", "One day, a girl named Mia", "Tom had a red ball."]
    return [starts[i % len(starts)] for i in range(n)]


def bench_transformers(model_dir: Path, prompts: list[str], new_tokens: int) -> float:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    batch = tok(prompts, return_tensors="pt", padding=True)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=True, temperature=1.0, top_k=0,
                             pad_token_id=tok.pad_token_id)
    secs = time.perf_counter() - t0
    return (out.shape[1] - batch["input_ids"].shape[1]) * len(prompts) / secs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256])
    args = ap.parse_args()
    from vllm import LLM, SamplingParams

    on_gpu = torch.cuda.is_available()
    t0 = time.perf_counter()
    llm = LLM(model=str(args.model_dir), dtype="bfloat16" if on_gpu else "float32", enforce_eager=not on_gpu, seed=0)
    print(f"vLLM engine start: {time.perf_counter() - t0:.1f} s")
    params = SamplingParams(max_tokens=args.new_tokens, min_tokens=args.new_tokens, temperature=1.0, ignore_eos=True, seed=0)
    llm.generate(prompts_for(4), params)  # warm-up
    for n in args.batches:
        prompts = prompts_for(n)
        t0 = time.perf_counter()
        outs = llm.generate(prompts, params, use_tqdm=False)
        v = sum(len(o.outputs[0].token_ids) for o in outs) / (time.perf_counter() - t0)
        hf = bench_transformers(args.model_dir, prompts, args.new_tokens)
        print(f"{n:4d} prompts × {args.new_tokens} tokens: vLLM {v:8,.0f} tok/s, transformers generate {hf:8,.0f} tok/s, ratio {v / hf:.2f}x")


if __name__ == "__main__":
    main()
