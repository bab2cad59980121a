"""Memory of a LoRA SFT step against a full one: the same model, data and steps, each in a fresh process.

    .venv/bin/python -m benchmarks.lora_memory [--steps 10] [--d-model 512] [--layers 8]

A random-initialised Qwen3-shaped model (GPT-2's tokenizer and vocabulary from the shared data,
tied embeddings) trained by `rl.sft`'s trainer on the addition task, fp32 AdamW, once on every
weight and once with `lora: {r: 16, alpha: 32}` (peft, all linear layers). Each run is its own
process: peak RSS after loading the model and after the steps, their difference (what training
adds: gradients, optimizer state, activations), and the trainable parameters. Prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import peak_rss_mb


def build(out: Path, d_model: int, layers: int) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, GPT2TokenizerFast, Qwen3Config

    from common.paths import data_root

    fixtures = data_root() / "cs336-a1-fixtures"
    merges = (fixtures / "gpt2_merges.txt").read_text().splitlines()
    tokenizer = GPT2TokenizerFast(
        vocab=json.loads((fixtures / "gpt2_vocab.json").read_text()),
        merges=[tuple(m.split()) for m in merges if m and not m.startswith("#version")],
    )
    config = Qwen3Config(
        vocab_size=50257,
        hidden_size=d_model,
        intermediate_size=3 * d_model,
        num_hidden_layers=layers,
        num_attention_heads=d_model // 64,
        num_key_value_heads=max(1, d_model // 256),
        head_dim=64,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        bos_token_id=50256,
        eos_token_id=50256,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def one_run(model: Path, mode: str, steps: int, work: Path) -> dict:
    """In this process: load, measure, train `steps`, measure."""
    from rl.sft import SFTSettings, build_trainer

    lora = {"r": 16, "alpha": 32} if mode == "lora" else None
    settings = SFTSettings(task="addition", max_steps=steps, batch_size=16, learning_rate=1e-4, lora=lora)
    trainer = build_trainer(model, settings, work)
    loaded = peak_rss_mb()
    trainer.train()
    return {
        "mode": mode,
        "loaded_mb": round(loaded),
        "peak_mb": round(peak_rss_mb()),
        "training_adds_mb": round(peak_rss_mb() - loaded),
        "trainable": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--one", choices=["full", "lora"], help=argparse.SUPPRESS)
    ap.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.one:
            print(json.dumps(one_run(args.model, args.one, args.steps, Path(tmp))))
            return
        model = build(Path(tmp) / "model", args.d_model, args.layers)
        runs = {}
        for mode in ("full", "lora"):
            cmd = [sys.executable, "-m", "benchmarks.lora_memory", "--one", mode, "--model", str(model)]
            out = subprocess.run(cmd + ["--steps", str(args.steps)], capture_output=True, text=True, check=True)
            runs[mode] = json.loads(out.stdout.strip().splitlines()[-1])
            print(runs[mode], flush=True)
    full, lora = runs["full"], runs["lora"]
    print(
        f"peak RSS: full {full['peak_mb']} MB, LoRA {lora['peak_mb']} MB ({lora['peak_mb'] / full['peak_mb']:.2f}x); "
        f"what training adds: full {full['training_adds_mb']} MB, LoRA {lora['training_adds_mb']} MB "
        f"({lora['training_adds_mb'] / max(1, full['training_adds_mb']):.2f}x); trainable parameters "
        f"{full['trainable']:,} vs {lora['trainable']:,}"
    )


if __name__ == "__main__":
    main()
