"""`deterministic: true`: the settings under which one machine repeats a run bit for bit.

PyTorch's kernels are free to pick algorithms whose floating-point reduction order varies
(cuBLAS split-K workspaces, atomics in CUDA backward passes, cuDNN autotuning, Inductor's
on-device benchmarking), and a CPU run's bits depend on the thread count. Deterministic
mode asks for deterministic algorithms everywhere, fixes cuBLAS's workspace, turns autotuning
off and records the thread count; seeds and data order are already fixed by the configs. It
promises the same bits for the same config, code and inputs on the same machine (CPU model,
BLAS, thread count, GPU and driver), not across machines. The settings are process-global,
so they hold inside a `with` and are restored after it (a sweep's thread runner, a test
process, the next stage).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from pydantic import Field

CUBLAS_WORKSPACE = ":4096:8"  # what PyTorch's reproducibility notes ask for deterministic cuBLAS
# the environment a run in deterministic mode may change (ours, and transformers' enable_full_determinism, which
# TRL's full_determinism calls for sft and grpo): restored afterwards, so a later stage in the process does not
# run with CUDA_LAUNCH_BLOCKING
ENVIRONMENT = (
    "CUBLAS_WORKSPACE_CONFIG",
    "CUDA_LAUNCH_BLOCKING",
    "FLASH_ATTENTION_DETERMINISTIC",
    "ASCEND_LAUNCH_BLOCKING",
    "HCCL_DETERMINISTIC",
)


def deterministic_setting() -> bool:
    """The `deterministic` field of every training stage's settings (pretrain, sft, grpo, a sweep's points).
    Typed as the field's value, as pydantic's own `Field` is, so `deterministic: bool = deterministic_setting()`
    type-checks."""
    return Field(
        False,
        description="the same bits on a rerun on this machine: deterministic kernels, fixed cuBLAS workspace, no "
        "autotuning (lm/determinism.py; sft and grpo add TRL's full_determinism); another CPU, BLAS, thread count "
        "or GPU still gives other bits",
    )


@contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    """Deterministic kernels (raising on an op that has none) while inside, when `enabled`."""
    if not enabled:
        yield
        return
    import torch._inductor.config as inductor

    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        inductor.deterministic,
        {name: os.environ.get(name) for name in ENVIRONMENT},
    )
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE  # read when cuBLAS makes its handle
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    inductor.deterministic = True
    try:
        yield
    finally:
        algorithms, torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, inductor.deterministic, env = (
            saved
        )
        torch.use_deterministic_algorithms(algorithms)
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
