"""The from-scratch model, optimizer and loop against torch/transformers references."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lm.accounting import count
from lm.generate import generate, sample_next
from lm.hf_export import export_hf, import_hf
from lm.model import (
    ModelConfig,
    RMSNorm,
    RotaryPositionalEmbedding,
    TransformerLM,
    scaled_dot_product_attention,
    softmax,
)
from lm.optim import AdamW, clip_grad_norm, cosine_lr, cross_entropy
from lm.train import (
    COMPILE_MIN_STEPS_CPU,
    PretrainConfig,
    TrainingDiverged,
    get_batch,
    read_metrics,
    resolve_auto,
    train,
)

TINY = dict(
    model={"d_model": 64, "num_layers": 2, "num_heads": 4, "context_length": 64},
    batch_size=8,
    eval_batches=2,
    warmup_steps=5,
    lr=3e-3,
)


def test_primitives_match_torch():
    x = torch.randn(3, 5, 16)
    assert torch.allclose(softmax(x, -1), torch.softmax(x, -1), atol=1e-6)
    assert torch.allclose(softmax(x * 1000, -1), torch.softmax(x * 1000, -1), atol=1e-6)  # stable
    norm = RMSNorm(16)
    assert torch.allclose(norm(x), F.rms_norm(x, (16,), norm.weight, 1e-5), atol=1e-6)
    assert norm(x.to(torch.bfloat16)).dtype == torch.bfloat16
    q, k, v = torch.randn(2, 4, 7, 8), torch.randn(2, 4, 7, 8), torch.randn(2, 4, 7, 8)
    mask = torch.ones(7, 7, dtype=torch.bool).tril()
    assert torch.allclose(
        scaled_dot_product_attention(q, k, v, mask), F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-5
    )
    logits, y = torch.randn(4, 9, 50), torch.randint(0, 50, (4, 9))
    assert torch.allclose(cross_entropy(logits, y), F.cross_entropy(logits.reshape(-1, 50), y.reshape(-1)), atol=1e-5)
    assert torch.isfinite(cross_entropy(logits * 1e4, y))


def test_rope_rotates_pairs_and_preserves_norm():
    rope = RotaryPositionalEmbedding(10_000.0, 8, 32)
    x = torch.randn(1, 5, 8)
    pos = torch.arange(5)[None]
    y = rope(x, pos)
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    assert torch.allclose(y[:, 0], x[:, 0])  # position 0: no rotation
    theta = 1.0  # pair 0 at position 1 rotates by 1 radian
    a, b = x[0, 1, 0], x[0, 1, 1]
    assert torch.allclose(
        y[0, 1, :2],
        torch.stack([a * math.cos(theta) - b * math.sin(theta), a * math.sin(theta) + b * math.cos(theta)]),
        atol=1e-6,
    )


def test_sdpa_path_equals_reference_path():
    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(vocab_size=300, context_length=32, d_model=64, num_layers=2, num_heads=4))
    x = torch.randint(0, 300, (2, 32))
    ref = model(x)
    model.set_attn_impl("sdpa")
    assert (model(x) - ref).abs().max() < 1e-5


def test_param_count_matches_module():
    for tie in (False, True):
        c = ModelConfig(vocab_size=1000, context_length=128, d_model=96, num_layers=3, num_heads=4, tie_embeddings=tie)
        assert count(c).params == sum(p.numel() for p in TransformerLM(c).parameters())
    assert ModelConfig(d_model=768).d_ff == 2048


@pytest.mark.parametrize("compiled", [False, True], ids=["foreach", "compiled"])
def test_adamw_matches_torch_adamw(compiled):
    torch.manual_seed(0)
    w0 = torch.randn(10, 10)
    ours, theirs = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(w0.clone())
    o1 = AdamW([ours], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, compiled=compiled)
    o2 = torch.optim.AdamW([theirs], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    for i in range(20):
        for p, o in ((ours, o1), (theirs, o2)):
            for group in o.param_groups:  # a schedule: the compiled update must follow it
                group["lr"] = 1e-2 * (1 - i / 40)
            o.zero_grad()
            (p.sin() ** 2).sum().backward()
            o.step()
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_schedule_and_clipping():
    lrs = [cosine_lr(t, 1.0, 0.1, 10, 100) for t in range(120)]
    assert (
        lrs[0] == 0
        and lrs[5] == 0.5
        and lrs[10] == 1.0
        and abs(lrs[55] - 0.55) < 1e-9
        and lrs[100] == pytest.approx(0.1)
        and lrs[119] == 0.1
    )
    p = torch.nn.Parameter(torch.zeros(4))
    p.grad = torch.tensor([3.0, 4.0, 0.0, 0.0])
    assert clip_grad_norm([p], 1.0).item() == pytest.approx(5.0)
    assert p.grad.norm().item() == pytest.approx(1.0, abs=1e-5)


def test_get_batch_windows():
    data = np.arange(100, dtype=np.uint16)
    x, y = get_batch(data, 4, 8, "cpu", np.random.default_rng(0))
    assert x.shape == (4, 8) and x.dtype == torch.int64 and torch.equal(y, x + 1)


def test_kv_cache_and_batched_generation_match_plain_decoding():
    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(vocab_size=300, context_length=64, d_model=64, num_layers=2, num_heads=4))
    prompts = [[5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8]]
    cached = generate(model, prompts, 12, temperature=0)
    plain = generate(model, prompts, 12, temperature=0, use_cache=False)
    alone = [generate(model, [p], 12, temperature=0)[0] for p in prompts]
    assert cached == plain == alone
    assert generate(model, prompts, 12, temperature=0, eos_id=cached[0][2])[0] == cached[0][:3]


def test_top_k_and_top_p():
    logits = torch.tensor([[5.0, 4.0, 1.0, 0.0]])
    draws = {int(sample_next(logits, 1.0, top_k=2)) for _ in range(200)}
    assert draws <= {0, 1}
    assert {int(sample_next(logits, 1.0, top_p=0.5)) for _ in range(50)} == {0}


def test_hf_export_logits_and_generate(token_dir, tmp_path, data):
    from transformers import AutoTokenizer, LlamaForCausalLM

    from lm.tokenizer import Tokenizer

    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(vocab_size=512, context_length=64, d_model=64, num_layers=2, num_heads=4)).eval()
    export_hf(model, token_dir / "tokenizer", tmp_path / "hf")
    hf = LlamaForCausalLM.from_pretrained(tmp_path / "hf", torch_dtype=torch.float32).eval()
    tok = Tokenizer.from_dir(token_dir / "tokenizer")
    ids = torch.tensor([tok.encode((data / "cs336-a1-fixtures" / "address.txt").read_text())[:64]])
    with torch.no_grad():
        assert (hf(ids).logits - model(ids)).abs().max() < 1e-4
        out = hf.generate(ids[:, :10], max_new_tokens=5, do_sample=False)
    assert out.shape[1] == 15
    hf_tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert hf_tok("Once upon a time")["input_ids"] == tok.encode("Once upon a time")
    again = import_hf(tmp_path / "hf")
    assert torch.allclose(again(ids), model(ids), atol=1e-6)


def test_training_lowers_loss_and_resume_continues_the_same_trajectory(token_dir, tmp_path):
    # deterministic: without it a CPU's kernels round differently from run to run (a CI run saw 1.4e-6)
    cfg = PretrainConfig(
        **TINY, max_steps=24, eval_interval=8, checkpoint_interval=100, log_interval=1, deterministic=True
    )
    full = train(cfg, token_dir, tmp_path / "full", progress=False)
    m_full = read_metrics(tmp_path / "full" / "metrics.jsonl")
    assert m_full[-1]["val_loss"] < m_full[0]["train_loss"] - 0.5
    part = train(cfg, token_dir, tmp_path / "part", stop_at_step=11, progress=False)
    assert not part["finished"]
    train(cfg, token_dir, tmp_path / "part", progress=False)  # resumes at step 11
    m_part = read_metrics(tmp_path / "part" / "metrics.jsonl")
    assert [m["step"] for m in m_part] == [m["step"] for m in m_full]
    # on a CPU in deterministic mode: the same trajectory to float precision. CUDA in bf16 is not
    # that close: the same trajectory within its noise.
    tol = 1e-6 if resolve_auto(cfg).device == "cpu" else 2e-2
    diffs = [abs(a["train_loss"] - b["train_loss"]) for a, b in zip(m_full, m_part)] + [
        abs(full["final_val_loss"] - m_part[-1]["val_loss"])
    ]
    assert max(diffs) < tol, diffs


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(token_dir, tmp_path):
    cfg = PretrainConfig(
        **{**TINY, "lr": 1e6, "grad_clip": 1e9, "warmup_steps": 0}, max_steps=60, checkpoint_interval=2
    )
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        train(cfg, token_dir, tmp_path / "run", progress=False)
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["step"] >= 2
    assert state["train"]["model"]["vocab_size"] == state["model"]["vocab_size"] == 512  # the tokenizer's, not 10,000


@pytest.mark.slow
def test_ddp_world_size_1_with_torchrun(token_dir, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps({**TINY, "max_steps": 4, "eval_interval": 2}))
    torchrun = Path(sys.executable).parent / "torchrun"
    r = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node=1",
            "-m",
            "lm.train",
            "--data",
            str(token_dir),
            "--out",
            str(tmp_path / "ddp"),
            "--config",
            str(cfg),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 4 and summary["finished"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 autocast and torch.compile paths need a CUDA GPU")
def test_bf16_compile_on_gpu(token_dir, tmp_path):
    """The GPU default path (auto: bf16 autocast + compile + TF32) trains to the fp32 eager loss."""
    auto = resolve_auto(PretrainConfig(**TINY, max_steps=10, device="cuda"))
    assert auto.precision == "bf16" and auto.compile is True
    fast = train(auto, token_dir, tmp_path / "gpu", progress=False)
    plain = train(
        auto.model_copy(update={"precision": "fp32", "compile": False}), token_dir, tmp_path / "fp32", progress=False
    )
    assert fast["finished"] and abs(fast["final_val_loss"] - plain["final_val_loss"]) < 0.05
    rows = read_metrics(tmp_path / "gpu" / "metrics.jsonl")
    if any(k in torch.cuda.get_device_name() for k in ("H100", "H200", "A100")):
        assert 0 < rows[-1]["mfu"] < 1


def test_auto_execution_settings_on_cpu():
    short = resolve_auto(PretrainConfig(**TINY, max_steps=10, device="cpu"))
    assert (short.device, short.precision, short.compile) == ("cpu", "fp32", False)
    long = resolve_auto(PretrainConfig(**TINY, max_steps=COMPILE_MIN_STEPS_CPU, device="cpu"))
    assert long.compile is (shutil.which("c++") is not None)
    assert resolve_auto(PretrainConfig(**TINY, max_steps=10, device="cpu", compile=True)).compile is True


@pytest.mark.slow
def test_compiled_and_bf16_training_on_cpu_match_eager_fp32(token_dir, tmp_path):
    """torch.compile (inductor's C++ backend) and CPU bf16 autocast run the same training as eager fp32."""
    base = PretrainConfig(**TINY, max_steps=6, eval_interval=6, device="cpu", precision="fp32", compile=False)
    eager = train(base, token_dir, tmp_path / "eager", progress=False)["final_val_loss"]
    compiled = train(base.model_copy(update={"compile": True}), token_dir, tmp_path / "compiled", progress=False)[
        "final_val_loss"
    ]
    bf16 = train(base.model_copy(update={"precision": "bf16"}), token_dir, tmp_path / "bf16", progress=False)[
        "final_val_loss"
    ]
    assert abs(compiled - eager) < 1e-3
    assert abs(bf16 - eager) < 0.05


def test_cross_entropy_backward_matches_torch_and_runs_once():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 40, requires_grad=True)
    y = torch.randint(0, 40, (3, 5))
    cross_entropy(logits, y).backward()
    ref = logits.detach().clone().requires_grad_(True)
    F.cross_entropy(ref.reshape(-1, 40), y.reshape(-1)).backward()
    assert torch.allclose(logits.grad, ref.grad, atol=1e-7)
    loss = cross_entropy(logits, y)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="ran twice"):
        loss.backward()


@pytest.mark.parametrize("dtype,chunk", [(torch.float32, 7), (torch.float32, None), (torch.bfloat16, 16)])
def test_fused_linear_cross_entropy_matches_the_unfused_loss_and_gradients(dtype, chunk):
    """Loss and both gradients equal `cross_entropy(hidden @ Wᵀ)` (chunks that do not divide the
    tokens, one chunk, bf16 inputs); without grad it is the loss alone."""
    from lm.fused_loss import fused_linear_cross_entropy

    torch.manual_seed(0)
    hidden = torch.randn(3, 30, 24, dtype=dtype, requires_grad=True)
    weight = (torch.randn(300, 24) * 0.2).to(dtype).requires_grad_(True)
    y = torch.randint(0, 300, (3, 30))
    ref = cross_entropy(hidden @ weight.T, y)
    ref.backward()
    ref_grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    loss = fused_linear_cross_entropy(hidden, weight, y, chunk=chunk)
    (loss * 3).backward()  # the upstream gradient scales the saved ones
    tol = 1e-6 if dtype == torch.float32 else 2e-2
    assert abs(loss.item() - ref.item()) < 1e-5
    assert torch.allclose(hidden.grad.float(), 3 * ref_grads[0].float(), atol=tol, rtol=tol)
    assert torch.allclose(weight.grad.float(), 3 * ref_grads[1].float(), atol=tol, rtol=tol)
    with torch.no_grad():
        assert abs(fused_linear_cross_entropy(hidden, weight, y, chunk=chunk).item() - ref.item()) < 1e-5


def test_training_with_the_fused_loss_matches_the_unfused_run(token_dir, tmp_path):
    base = PretrainConfig(**TINY, max_steps=6, eval_interval=6, device="cpu", precision="fp32", compile=False)
    plain = train(base, token_dir, tmp_path / "plain", progress=False)["final_val_loss"]
    fused = train(base.model_copy(update={"fused_loss": True}), token_dir, tmp_path / "fused", progress=False)[
        "final_val_loss"
    ]
    assert abs(fused - plain) < 1e-4


def test_clipping_leaves_small_gradients_alone():
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.tensor([0.1, 0.2, 0.2])
    assert clip_grad_norm([p], 1.0).item() == pytest.approx(0.3)
    assert torch.equal(p.grad, torch.tensor([0.1, 0.2, 0.2]))


def test_cs336_checkpoint_api_round_trips_model_optimizer_and_iteration(tmp_path):
    import io

    from lm.checkpoint import load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(vocab_size=64, context_length=16, d_model=32, num_layers=1, num_heads=2))
    opt = AdamW(model.parameters(), lr=1e-2)
    x = torch.randint(0, 64, (2, 16))
    cross_entropy(model(x), x).backward()
    opt.step()
    for out in (tmp_path / "ckpt.pt", io.BytesIO()):
        save_checkpoint(model, opt, 7, out)
        if isinstance(out, io.BytesIO):
            out.seek(0)
        fresh = TransformerLM(ModelConfig(vocab_size=64, context_length=16, d_model=32, num_layers=1, num_heads=2))
        fresh_opt = AdamW(fresh.parameters(), lr=1e-2)
        assert load_checkpoint(out, fresh, fresh_opt) == 7
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))
        assert fresh_opt.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]


def test_pretrain_config_nests_the_one_model_definition():
    """The model's shape is ModelConfig's (defaults once); unknown keys and a vocab_size
    (it comes from the tokenizer) are errors naming the field."""
    from pydantic import ValidationError

    cfg = PretrainConfig(model={"d_model": 96, "num_heads": 4})
    assert cfg.model == ModelConfig(d_model=96, num_heads=4) and cfg.model.attn_impl == ModelConfig().attn_impl
    assert (
        cfg.model_config_for(1234).vocab_size == 1234
        and cfg.model_config_for(1234).d_ff == ModelConfig(d_model=96).d_ff
    )
    with pytest.raises(ValidationError, match="model.d_modle"):
        PretrainConfig(model={"d_modle": 96})
    with pytest.raises(ValidationError, match="vocab_size comes from the tokenize artifact"):
        PretrainConfig(model={"vocab_size": 500})
    with pytest.raises(ValidationError, match="not divisible"):
        PretrainConfig(model={"d_model": 100, "num_heads": 8})


def test_deterministic_mode_repeats_a_pretraining_run_bit_for_bit_and_restores_the_defaults(token_dir, tmp_path):
    """`deterministic: true`, compiled as long runs are on a CPU, on the default thread count: two
    runs give the same weights and the same logged losses to the bit; the process's settings are
    restored after each run."""
    from safetensors.torch import load_file

    cfg = PretrainConfig(
        **TINY, max_steps=12, eval_interval=6, log_interval=1, device="cpu", compile=True, deterministic=True
    )
    runs = []
    for name in ("first", "second"):
        summary = train(cfg, token_dir, tmp_path / name, progress=False)
        assert not torch.are_deterministic_algorithms_enabled()
        weights = load_file(tmp_path / name / "checkpoint" / "model.safetensors")
        losses = [(m["train_loss"], m.get("val_loss")) for m in read_metrics(tmp_path / name / "metrics.jsonl")]
        runs.append((summary["final_val_loss"], weights, losses))
    (loss_a, weights_a, log_a), (loss_b, weights_b, log_b) = runs
    assert loss_a == loss_b and log_a == log_b
    assert weights_a.keys() == weights_b.keys() and all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
