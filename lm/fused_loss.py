"""Cross-entropy of a linear head without the full logits tensor: `fused_linear_cross_entropy`.

The head's logits are (tokens × vocabulary): for a 50k vocabulary and 64k tokens a step,
12.5 GB in fp32, written, read by the softmax, and kept for the backward pass. Here the
tokens go through in chunks: each chunk's logits (in the head's dtype, upcast to fp32
for the softmax) are turned into the loss and, at once, into the chunk's gradients for
the hidden states and the head weight; only a chunk's logits ever exist. The backward
pass then only scales the saved gradients. Same values and gradients as
`cross_entropy(hidden @ weightᵀ, targets)` up to float summation order (tests).
"""

from __future__ import annotations

import torch
from torch import Tensor

# chunk so that one chunk's fp32 logits stay near 256 MB whatever the vocabulary
CHUNK_LOGIT_BYTES = 256 * 2**20


def chunk_tokens(tokens: int, vocab: int) -> int:
    return max(1, min(tokens, CHUNK_LOGIT_BYTES // (4 * vocab)))


def _chunked(
    hidden: Tensor, weight: Tensor, targets: Tensor, chunk: int, with_grads: bool
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """(mean loss, d loss/d hidden, d loss/d weight in fp32), the gradients only `with_grads`."""
    h = hidden.reshape(-1, hidden.shape[-1])
    t = targets.reshape(-1)
    n = h.shape[0]
    grad_h = torch.empty_like(h) if with_grads else None
    grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if with_grads else None
    total = torch.zeros((), dtype=torch.float32, device=h.device)
    for lo in range(0, n, chunk):
        hc, tc = h[lo : lo + chunk], t[lo : lo + chunk, None]
        logits = (hc @ weight.T).float()
        lse = torch.logsumexp(logits, dim=-1)
        total += (lse - logits.gather(-1, tc).squeeze(-1)).sum()
        if with_grads:
            # d(mean loss)/d logits = (softmax − onehot)/n, in place over the chunk's logits
            grad = logits.sub_(lse[:, None]).exp_()
            grad.scatter_add_(-1, tc, torch.full_like(tc, -1, dtype=grad.dtype))
            grad = grad.div_(n)
            grad_h[lo : lo + chunk] = grad.to(h.dtype) @ weight
            grad_w.addmm_(grad.T, hc.float())
    return total / n, grad_h, grad_w


class _FusedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, targets: Tensor, chunk: int) -> Tensor:
        loss, grad_h, grad_w = _chunked(hidden, weight, targets, chunk, with_grads=True)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.hidden_shape, ctx.weight_dtype = hidden.shape, weight.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grad_h, grad_w = ctx.saved_tensors
        return (grad_h * grad_out).reshape(ctx.hidden_shape), (grad_w * grad_out).to(ctx.weight_dtype), None, None


def fused_linear_cross_entropy(hidden: Tensor, weight: Tensor, targets: Tensor, chunk: int | None = None) -> Tensor:
    """Mean −log softmax(hidden @ weightᵀ)[target]. hidden: (..., d), weight: (V, d), targets: (...).

    The gradients are computed during the forward pass, so call `backward` at most once on
    the result (training does); under `torch.no_grad` the forward alone runs, chunked too.
    """
    chunk = chunk or chunk_tokens(targets.numel(), weight.shape[0])
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _FusedLinearCrossEntropy.apply(hidden, weight, targets, chunk)
    return _chunked(hidden, weight, targets, chunk, with_grads=False)[0]
