"""Parameter and FLOP accounting for `ModelConfig`, shared with the scaling library."""

from __future__ import annotations

from dataclasses import dataclass

from lm.model import ModelConfig

# dense bf16 peak FLOP/s (no sparsity), for MFU
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12, "4090": 165e12}


@dataclass(frozen=True)
class Counts:
    params: int  # every parameter (tied weights once)
    embedding_params: int  # input embedding + LM head (once if tied)
    non_embedding_params: int  # the blocks and final norm: Kaplan et al.'s N
    flops_per_token: float  # training (forward + backward = 3 × forward), matmuls exactly, LM head included
    flops_per_token_6n: float  # the 6N approximation, N = non-embedding params (Kaplan et al. 2020, §2.1)


def count(c: ModelConfig) -> Counts:
    d, L, V, f, T = c.d_model, c.num_layers, c.vocab_size, c.d_ff, c.context_length
    per_layer = 4 * d * d + 3 * d * f + 2 * d  # q,k,v,o + w1,w2,w3 + two RMSNorm gains
    embedding = V * d
    head = 0 if c.tie_embeddings else V * d
    params = embedding + L * per_layer + d + head
    non_embedding = L * per_layer + d
    # forward matmul FLOPs per token: 2·(weights) for every projection, plus attention's
    # QKᵀ and AV at 2·T·d each per layer (full context, as Kaplan et al. / Chinchilla count)
    forward = 2 * L * (4 * d * d + 3 * d * f) + 2 * L * 2 * T * d + 2 * d * V
    return Counts(params, embedding + head, non_embedding, 3.0 * forward, 6.0 * non_embedding)


def peak_flops_of(device_name: str) -> float | None:
    """Dense bf16 peak of a known GPU (matched on its name), else None."""
    return next((peak for key, peak in PEAK_FLOPS.items() if key in device_name), None)


def mfu(tokens_per_s: float, flops_per_token: float, device_name: str, peak_flops: float | None = None) -> float | None:
    """Model FLOPs utilisation: achieved training FLOP/s over the device's peak (`peak_flops`
    overrides the table; None when neither knows the device)."""
    peak = peak_flops or peak_flops_of(device_name)
    return None if peak is None else tokens_per_s * flops_per_token / peak
