"""Evaluation: batched generation over a held-out split → accuracy, reward, format rate, length.

Engines: `vllm` when it is installed (the rollout engine), else `transformers` batched
`generate` with left padding. The result says which engine produced it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from rl.tasks import Task


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def generate_transformers(model_dir: Path, prompts: list[str], max_new_tokens: int, temperature: float, seed: int, batch_size: int = 256) -> tuple[list[str], list[int]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    torch.manual_seed(seed)
    texts, lengths = [], []
    for i in range(0, len(prompts), batch_size):
        batch = tok(prompts[i : i + batch_size], return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=temperature > 0, temperature=temperature if temperature > 0 else None,
                                 top_p=1.0, top_k=0, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        for row in out[:, batch["input_ids"].shape[1] :]:
            ids = row.tolist()
            n = ids.index(tok.eos_token_id) + 1 if tok.eos_token_id in ids else len(ids)
            lengths.append(n)
            texts.append(tok.decode(ids[:n], skip_special_tokens=True))
    return texts, lengths


def generate_vllm(model_dir: Path, prompts: list[str], max_new_tokens: int, temperature: float, seed: int) -> tuple[list[str], list[int]]:
    from vllm import LLM, SamplingParams

    on_gpu = torch.cuda.is_available()
    llm = LLM(model=str(model_dir), dtype="bfloat16" if on_gpu else "float32", enforce_eager=not on_gpu, seed=seed,
              max_model_len=None if on_gpu else 512)
    outs = llm.generate(prompts, SamplingParams(max_tokens=max_new_tokens, temperature=temperature, seed=seed))
    return [o.outputs[0].text for o in outs], [len(o.outputs[0].token_ids) for o in outs]


def evaluate(model_dir: Path, task: Task, split: str = "test", limit: int | None = None, temperature: float = 0.0, seed: int = 0,
             engine: str = "auto") -> dict:
    rows = task.load(split)[:limit]
    prompts = [r["prompt"] for r in rows]
    if engine == "auto":
        engine = "vllm" if vllm_available() else "transformers"
    gen = generate_vllm if engine == "vllm" else generate_transformers
    completions, lengths = gen(Path(model_dir), prompts, task.max_completion_tokens, temperature, seed)
    rewards = task.reward(prompts, completions, answer=[r["answer"] for r in rows])
    return {
        "engine": engine,
        "split": split,
        "n": len(rows),
        "temperature": temperature,
        "accuracy": sum(r >= task.success_threshold for r in rewards) / len(rows),
        "mean_reward": sum(rewards) / len(rows),
        "format_rate": sum(r > 0 for r in rewards) / len(rows),
        "mean_completion_tokens": sum(lengths) / len(rows),
        "examples": [{"prompt": p, "completion": c, "reward": r} for p, c, r in list(zip(prompts, completions, rewards))[:5]],
    }
