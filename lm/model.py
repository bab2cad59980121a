"""A Llama-style decoder written from scratch (CS336 assignment 1 conventions).

Pre-norm blocks `x + Attn(RMSNorm(x))`, `x + SwiGLU(RMSNorm(x))`; RoPE on q and k; no
biases; final RMSNorm and LM head. Departures from Meta's Llama, all deliberate:
- RoPE rotates interleaved pairs (x[2i], x[2i+1]) as in the RoFormer paper and Meta's
  code; Hugging Face's Llama rotates halves, so `lm.hf_export` permutes the q/k rows.
- Two attention paths: `reference` (our softmax, boolean mask, True = attend) and `sdpa`
  (torch's fused kernels: flash / memory-efficient on GPU). Equal in fp32 within 1e-5.
- Optional weight tying of the LM head to the embedding (off by default, as in Llama).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


@dataclass(kw_only=True)
class ModelConfig:
    """The model's shape: the one definition, nested in `PretrainConfig` as `model:`."""

    # pydantic validates this dataclass where a config nests it: unknown keys are errors
    __pydantic_config__ = {"extra": "forbid"}

    vocab_size: int = 10_000
    context_length: int = 256
    d_model: int = 256
    num_layers: int = 4
    num_heads: int = 8
    d_ff: int | None = None  # None: 8/3·d_model rounded up to a multiple of 64 (SwiGLU keeps FFN FLOPs ≈ 4·d²·2)
    rope_theta: float = 10_000.0
    tie_embeddings: bool = False
    attn_impl: str = "sdpa"  # "sdpa" (torch's fused kernels) | "reference" (ours); equal within 1e-5

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "d_model", "num_layers", "num_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.attn_impl not in ("sdpa", "reference"):
            raise ValueError(f"attn_impl must be 'sdpa' or 'reference', got {self.attn_impl!r}")
        if self.d_ff is None:
            self.d_ff = default_d_ff(self.d_model)
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by num_heads {self.num_heads}")
        if (self.d_model // self.num_heads) % 2:
            raise ValueError("RoPE needs an even head dimension")

    def to_dict(self) -> dict:
        return asdict(self)


def default_d_ff(d_model: int) -> int:
    return 64 * math.ceil(8 * d_model / 3 / 64)


# --- primitives -------------------------------------------------------------------------------
class Linear(nn.Module):
    """y = x Wᵀ, W: (d_out, d_in), no bias; init N(0, 2/(d_in+d_out)) truncated at ±3σ."""

    def __init__(self, in_features: int, out_features: int, device=None, dtype=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features, device=device, dtype=dtype))
        std = math.sqrt(2.0 / (in_features + out_features))
        nn.init.trunc_normal_(self.weight, std=std, a=-3 * std, b=3 * std)

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.weight.T


class Embedding(nn.Module):
    """Lookup table (num_embeddings, embedding_dim); init N(0, 1) truncated at ±3."""

    def __init__(self, num_embeddings: int, embedding_dim: int, device=None, dtype=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_embeddings, embedding_dim, device=device, dtype=dtype))
        nn.init.trunc_normal_(self.weight, std=1.0, a=-3.0, b=3.0)

    def forward(self, token_ids: Tensor) -> Tensor:
        return self.weight[token_ids]


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) · g, computed in float32 and cast back (Zhang & Sennrich 2019)."""

    def __init__(self, d_model: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        in_dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x * self.weight.float()).to(in_dtype)


class RotaryPositionalEmbedding(nn.Module):
    """RoPE (Su et al. 2021): rotate each pair (x[2i], x[2i+1]) by angle pos · θ^(-2i/d).

    Written as x·cos + swap(x)·sin with the tables laid out per element (cos repeated for
    both members of a pair, sin negated on the even one; swap exchanges each pair): three
    elementwise passes and one copy instead of six and a stack."""

    def __init__(self, theta: float, d_k: int, max_seq_len: int, device=None):
        super().__init__()
        inv_freq = theta ** (-torch.arange(0, d_k, 2, device=device, dtype=torch.float32) / d_k)  # (d_k/2,)
        angles = torch.outer(torch.arange(max_seq_len, device=device, dtype=torch.float32), inv_freq)  # (S, d_k/2)
        sign = torch.tensor([-1.0, 1.0], device=device)
        self.register_buffer("cos", angles.cos().repeat_interleave(2, dim=-1), persistent=False)  # (S, d_k)
        self.register_buffer(
            "sin", (angles.sin()[..., None] * sign).flatten(-2), persistent=False
        )  # (S, d_k): -sin, +sin

    def forward(self, x: Tensor, token_positions: Tensor | None = None) -> Tensor:
        """x: (..., T, d_k); token_positions: (..., T) broadcastable to x's leading dims,
        or None for positions 0..T-1."""
        if token_positions is None:
            cos, sin = self.cos[: x.shape[-2]], self.sin[: x.shape[-2]]
        else:
            cos, sin = self.cos[token_positions], self.sin[token_positions]
        xf = x.float()
        swapped = xf.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # (x1, x0, x3, x2, ...)
        return (xf * cos + swapped * sin).to(x.dtype)


def softmax(x: Tensor, dim: int) -> Tensor:
    """Numerically stable: subtract the max before exponentiating."""
    x = x - x.amax(dim=dim, keepdim=True)
    e = x.exp()
    return e / e.sum(dim=dim, keepdim=True)


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """softmax(q kᵀ / √d) v; `mask` is boolean, True = attend. q: (..., T, d), k, v: (..., S, d)."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (..., T, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return softmax(scores, dim=-1) @ v


# --- blocks -----------------------------------------------------------------------------------
class KVCache:
    """Keys and values of the tokens seen so far, per layer: (B, H, S, d_head)."""

    def __init__(self) -> None:
        self.k: list[Tensor | None] = []
        self.v: list[Tensor | None] = []

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        while len(self.k) <= layer:
            self.k.append(None)
            self.v.append(None)
        if self.k[layer] is not None:
            k = torch.cat([self.k[layer], k], dim=2)
            v = torch.cat([self.v[layer], v], dim=2)
        self.k[layer], self.v[layer] = k, v
        return k, v

    @property
    def length(self) -> int:
        return 0 if not self.k or self.k[0] is None else self.k[0].shape[2]


class MultiHeadSelfAttention(nn.Module):
    def __init__(
        self,
        d_model: int,
        num_heads: int,
        rope: RotaryPositionalEmbedding | None,
        attn_impl: str = "reference",
        layer: int = 0,
    ):
        super().__init__()
        self.num_heads, self.attn_impl, self.layer = num_heads, attn_impl, layer
        self.q_proj = Linear(d_model, d_model)
        self.k_proj = Linear(d_model, d_model)
        self.v_proj = Linear(d_model, d_model)
        self.output_proj = Linear(d_model, d_model)
        self.rope = rope

    def forward(
        self, x: Tensor, positions: Tensor | None = None, key_valid: Tensor | None = None, cache: KVCache | None = None
    ) -> Tensor:
        B, T, _ = x.shape
        q, k, v = (
            rearrange(p(x), "b t (h d) -> b h t d", h=self.num_heads) for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        if positions is None and cache is not None and cache.length:
            positions = torch.arange(cache.length, cache.length + T, device=x.device).expand(B, T)
        if self.rope is not None:
            pos = None if positions is None else positions[:, None, :]  # None: 0..T-1, a slice of the table
            q = self.rope(q, pos)
            k = self.rope(k, pos)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)
        S = k.shape[2]
        if key_valid is None and S == T:
            mask = None  # plain causal: lets sdpa use its causal (flash) kernels
        else:
            # the T new queries are the last T of S positions: query t sees keys <= S - T + t
            causal = (
                torch.arange(S, device=x.device)[None, :] <= torch.arange(S - T, S, device=x.device)[:, None]
            )  # (T, S)
            if key_valid is None:
                mask = causal[None, None]
            else:
                # a padding query sees only itself: never an all-masked row (NaN), and real
                # queries never see padding keys
                own = torch.arange(S, device=x.device)[None, :] == torch.arange(S - T, S, device=x.device)[:, None]
                mask = causal[None, None] & (key_valid[:, None, None, :S] | own[None, None])
        if self.attn_impl == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        else:
            if mask is None:
                mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril()
            out = scaled_dot_product_attention(q, k, v, mask)
        return self.output_proj(rearrange(out, "b h t d -> b t (h d)"))


def silu(x: Tensor) -> Tensor:
    """SiLU / swish: x·σ(x) (Hendrycks & Gimpel 2016; Ramachandran et al. 2017)."""
    return x * torch.sigmoid(x)


class SwiGLU(nn.Module):
    """W2(SiLU(W1 x) ⊙ W3 x) (Shazeer 2020, "GLU Variants Improve Transformer")."""

    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.w1 = Linear(d_model, d_ff)
        self.w2 = Linear(d_ff, d_model)
        self.w3 = Linear(d_model, d_ff)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        rope: RotaryPositionalEmbedding | None,
        attn_impl: str = "reference",
        layer: int = 0,
    ):
        super().__init__()
        self.ln1 = RMSNorm(d_model)
        self.attn = MultiHeadSelfAttention(d_model, num_heads, rope, attn_impl, layer)
        self.ln2 = RMSNorm(d_model)
        self.ffn = SwiGLU(d_model, d_ff)

    def forward(
        self, x: Tensor, positions: Tensor | None = None, key_valid: Tensor | None = None, cache: KVCache | None = None
    ) -> Tensor:
        x = x + self.attn(self.ln1(x), positions, key_valid, cache)
        return x + self.ffn(self.ln2(x))


class TransformerLM(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = c = config
        # one RoPE table shared by every layer (a buffer, not a parameter)
        rope = RotaryPositionalEmbedding(c.rope_theta, c.d_model // c.num_heads, c.context_length)
        self.token_embeddings = Embedding(c.vocab_size, c.d_model)
        self.layers = nn.ModuleList(
            TransformerBlock(c.d_model, c.num_heads, c.d_ff, rope, c.attn_impl, i) for i in range(c.num_layers)
        )
        self.ln_final = RMSNorm(c.d_model)
        self.lm_head = Linear(c.d_model, c.vocab_size)
        if c.tie_embeddings:
            self.lm_head.weight = self.token_embeddings.weight

    def forward(
        self,
        token_ids: Tensor,
        positions: Tensor | None = None,
        key_valid: Tensor | None = None,
        cache: KVCache | None = None,
        head: bool = True,
    ) -> Tensor:
        """token_ids: (B, T) → logits (B, T, vocab); with `head=False` the final normed hidden
        states (B, T, d_model), for a loss fused with the head (lm/fused_loss.py)."""
        x = self.token_embeddings(token_ids)
        for block in self.layers:
            x = block(x, positions, key_valid, cache)
        x = self.ln_final(x)
        return self.lm_head(x) if head else x

    def set_attn_impl(self, impl: str) -> None:
        self.config.attn_impl = impl
        for block in self.layers:
            block.attn.attn_impl = impl
