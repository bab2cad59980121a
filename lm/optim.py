"""Loss, optimizer, schedule and clipping, from scratch (CS336 assignment 1)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor


def cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean −log softmax(logits)[target], via log-sum-exp (stable, no softmax materialised).

    logits: (..., V) any float dtype (upcast to float32); targets: (...) int.
    """
    logits = logits.float()
    lse = torch.logsumexp(logits, dim=-1)
    target_logit = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (lse - target_logit).mean()


def perplexity(loss: float) -> float:
    return math.exp(loss)


class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019, Algorithm 2).

    θ ← θ − α_t · m̂/(√v̂ + ε) − α·λ·θ, with bias-corrected α_t = α·√(1−β₂ᵗ)/(1−β₁ᵗ).
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8, weight_decay: float = 0.01):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or weight_decay < 0:
            raise ValueError(f"invalid AdamW hyper-parameters: lr={lr} betas={betas} eps={eps} weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Callable | None = None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in params:
                if not self.state[p]:
                    self.state[p].update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                self.state[p]["step"] += 1
            grads = [p.grad for p in params]
            m = [self.state[p]["m"] for p in params]
            v = [self.state[p]["v"] for p in params]
            t = self.state[params[0]]["step"]  # every param of a group steps together
            # one fused kernel per operation over the whole group (torch._foreach_*):
            # the same arithmetic as a per-tensor loop, without its per-tensor overhead
            torch._foreach_mul_(m, b1)
            torch._foreach_add_(m, grads, alpha=1 - b1)  # m ← β₁m + (1−β₁)g
            torch._foreach_mul_(v, b2)
            torch._foreach_addcmul_(v, grads, grads, value=1 - b2)  # v ← β₂v + (1−β₂)g²
            if wd:
                # decoupled, from θ_{t-1} (Algorithm 2, line 12): not through the gradient
                torch._foreach_mul_(params, 1 - lr * wd)
            step_size = lr * math.sqrt(1 - b2**t) / (1 - b1**t)  # bias correction folded into α_t
            denom = torch._foreach_sqrt(v)
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(params, m, denom, value=-step_size)
        return loss


def cosine_lr(t: int, max_lr: float, min_lr: float, warmup_steps: int, cosine_steps: int) -> float:
    """1) linear warmup to max_lr, 2) cosine from max_lr to min_lr until `cosine_steps`, 3) min_lr."""
    if t < warmup_steps:
        return max_lr * t / warmup_steps
    if t <= cosine_steps:
        progress = (t - warmup_steps) / max(cosine_steps - warmup_steps, 1)
        return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)
    return min_lr


@torch.no_grad()
def clip_grad_norm(params: Iterable[torch.nn.Parameter], max_norm: float, eps: float = 1e-6) -> float:
    """Scale all gradients by max_norm/(‖g‖₂ + eps) when the global norm exceeds max_norm."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])).item()
    if total > max_norm:
        scale = max_norm / (total + eps)
        for g in grads:
            g.mul_(scale)
    return total
