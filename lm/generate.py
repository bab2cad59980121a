"""Decoding: temperature, top-k, top-p (nucleus), batched prompts, a KV cache."""

from __future__ import annotations

import torch
from torch import Tensor

from lm.model import KVCache, TransformerLM, softmax


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """logits: (B, V) → next ids (B,). temperature 0 is greedy."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = softmax(logits, dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        drop = sorted_p.cumsum(-1) - sorted_p >= top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        probs = probs / probs.sum(-1, keepdim=True)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate(
    model: TransformerLM,
    prompts: list[list[int]],
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    use_cache: bool = True,
    seed: int | None = None,
) -> list[list[int]]:
    """Continue each prompt; returns only the new tokens (eos included when hit, then stop).

    Prompts of different lengths are left-padded; padding is masked out of attention and
    positions count only real tokens, so each row decodes as if it were alone.
    """
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    B, ctx = len(prompts), model.config.context_length
    longest = max(map(len, prompts))
    if longest + max_new_tokens > ctx:
        raise ValueError(f"prompt ({longest}) + max_new_tokens ({max_new_tokens}) exceeds the context length {ctx}")
    ids = torch.zeros(B, longest, dtype=torch.long, device=device)
    valid = torch.zeros(B, longest, dtype=torch.bool, device=device)
    for i, p in enumerate(prompts):
        ids[i, longest - len(p) :] = torch.tensor(p, dtype=torch.long)
        valid[i, longest - len(p) :] = True
    positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
    cache = KVCache() if use_cache else None
    out: list[list[int]] = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=device)
    step_ids, step_pos = ids, positions
    for _ in range(max_new_tokens):
        if use_cache:
            logits = model(step_ids, step_pos, valid, cache)[:, -1]
        else:
            logits = model(ids, positions, valid)[:, -1]
        nxt = sample_next(logits, temperature, top_k, top_p, gen)
        for i in range(B):
            if not done[i]:
                out[i].append(int(nxt[i]))
                if eos_id is not None and int(nxt[i]) == eos_id:
                    done[i] = True
        if bool(done.all()):
            break
        new_pos = positions[:, -1:] + 1
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        positions = torch.cat([positions, new_pos], dim=1)
        valid = torch.cat([valid, torch.ones(B, 1, dtype=torch.bool, device=device)], dim=1)
        step_ids, step_pos = nxt[:, None], new_pos
    return out
