"""Loss, optimizer, schedule and clipping, from scratch (CS336 assignment 1)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor


def cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean −log softmax(logits)[target], via log-sum-exp (stable: the max is subtracted).

    logits: (..., V) any float dtype (upcast to float32); targets: (...) int.
    """
    if torch.compiler.is_compiling():
        # inductor fuses these into one pass forward and one backward by itself
        logits = logits.float()
        target_logit = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return (torch.logsumexp(logits, dim=-1) - target_logit).mean()
    return _CrossEntropy.apply(logits, targets)


class _CrossEntropy(torch.autograd.Function):
    """Forward keeps the softmax it computes on the way to log-sum-exp; backward turns it
    into the gradient (p − onehot)/n in place. Autograd through `logsumexp` would instead
    recompute exp(logits − lse) and allocate twice more: with a 10k vocabulary this loss
    was 13% of a CPU training step, now ~6% (torch profiler, BENCHMARKS.md)."""

    @staticmethod
    def forward(ctx, logits: Tensor, targets: Tensor) -> Tensor:
        shape, dtype = logits.shape, logits.dtype
        flat = logits.reshape(-1, shape[-1]).float()
        idx = targets.reshape(-1, 1)
        target_logit = flat.gather(-1, idx).squeeze(-1)
        peak = flat.amax(dim=-1, keepdim=True)
        probs = (flat - peak).exp_()  # a new buffer even when `flat` is `logits` itself
        total = probs.sum(dim=-1, keepdim=True)
        lse = (peak + total.log()).squeeze(-1)
        ctx.probs = probs.div_(total)
        ctx.idx, ctx.shape, ctx.dtype = idx, shape, dtype
        return (lse - target_logit).mean()

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grad = ctx.probs
        if grad is None:
            raise RuntimeError("cross_entropy's backward ran twice: its saved softmax is consumed by the first")
        ctx.probs = None
        grad.scatter_add_(-1, ctx.idx, torch.full_like(ctx.idx, -1, dtype=grad.dtype))
        grad.mul_(grad_out / grad.shape[0])
        return grad.reshape(ctx.shape).to(ctx.dtype), None


class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019, Algorithm 2).

    θ ← θ − α_t · m̂/(√v̂ + ε) − α·λ·θ, with bias-corrected α_t = α·√(1−β₂ᵗ)/(1−β₁ᵗ).

    `compiled=True` runs the update through torch.compile: one fused kernel per parameter
    (read θ, g, m, v once; write θ, m, v once) instead of seven passes of `_foreach` kernels
    over the whole model; a third of the optimizer's GPU time (BENCHMARKS.md). The learning
    rate and step size enter as 0-d tensors, so a schedule never triggers a recompile.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        compiled: bool = False,
    ):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or weight_decay < 0:
            raise ValueError(
                f"invalid AdamW hyper-parameters: lr={lr} betas={betas} eps={eps} weight_decay={weight_decay}"
            )
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self._compiled_update = torch.compile(_adamw_update, dynamic=False) if compiled else None

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
            step_size = lr * math.sqrt(1 - b2**t) / (1 - b1**t)  # bias correction folded into α_t
            if self._compiled_update is not None:
                scalars = torch.tensor([1 - lr * wd, step_size], dtype=torch.float32).to(
                    params[0].device, non_blocking=True
                )
                self._compiled_update(params, grads, m, v, scalars, b1, b2, eps)
                continue
            # one fused kernel per operation over the whole group (torch._foreach_*):
            # the same arithmetic as a per-tensor loop, without its per-tensor overhead
            torch._foreach_lerp_(m, grads, 1 - b1)  # m ← β₁m + (1−β₁)g, one pass
            torch._foreach_mul_(v, b2)
            torch._foreach_addcmul_(v, grads, grads, value=1 - b2)  # v ← β₂v + (1−β₂)g²
            if wd:
                # decoupled, from θ_{t-1} (Algorithm 2, line 12): not through the gradient
                torch._foreach_mul_(params, 1 - lr * wd)
            denom = torch._foreach_sqrt(v)
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(params, m, denom, value=-step_size)
        return loss


def _adamw_update(
    params: list[Tensor],
    grads: list[Tensor],
    ms: list[Tensor],
    vs: list[Tensor],
    scalars: Tensor,
    b1: float,
    b2: float,
    eps: float,
) -> None:
    """The same update as AdamW.step's `_foreach` path, per tensor, for torch.compile to fuse.
    scalars = (1 − α·λ, α_t) as a tensor on the parameters' device."""
    decay, step_size = scalars[0], scalars[1]
    for p, g, m, v in zip(params, grads, ms, vs):
        m.lerp_(g, 1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        p.mul_(decay).sub_(step_size * m / (v.sqrt() + eps))


def cosine_lr(t: int, max_lr: float, min_lr: float, warmup_steps: int, cosine_steps: int) -> float:
    """1) linear warmup to max_lr, 2) cosine from max_lr to min_lr until `cosine_steps`, 3) min_lr."""
    if t < warmup_steps:
        return max_lr * t / warmup_steps
    if t <= cosine_steps:
        progress = (t - warmup_steps) / max(cosine_steps - warmup_steps, 1)
        return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)
    return min_lr


@torch.no_grad()
def clip_grad_norm(params: Iterable[torch.nn.Parameter], max_norm: float, eps: float = 1e-6) -> Tensor:
    """Scale all gradients by max_norm/(‖g‖₂ + eps) when the global norm exceeds max_norm.

    Returns the norm before clipping as a 0-d tensor. Nothing here waits for the device: the
    scale is min(1, max_norm/(‖g‖+eps)) applied unconditionally, so a GPU step never stalls
    on a `.item()`; read the norm when you log it.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm([g.float() for g in grads])))
    scale = (max_norm / (total + eps)).clamp(max=1.0)
    torch._foreach_mul_(grads, scale.to(grads[0].dtype))
    return total
