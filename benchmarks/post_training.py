"""Post-training throughput: our SFT vs a plain TRL `SFTTrainer` script, and evaluate with vLLM vs `generate`.

    .venv/bin/python -m benchmarks.post_training [--model HF_DIR] [--steps 100] [--eval-prompts 500] [--samples 8]

SFT: the same model, data (the addition task's train split as prompt-completion pairs)
and settings (batch 64, lr 1e-3, completion-only loss), trained once by `rl.sft.run_sft`'s
trainer and once by a script that builds TRL's `SFTTrainer` by hand as its docs show;
training tokens per second for each and the ratio (the goal: our overhead ≤ 10%). The
stage's own extra work (held-out loss and accuracy after training) is timed apart.

Evaluate: `rl.evaluate.evaluate_model_dir` on the addition test split, greedy plus
`--samples` sampled completions per prompt, once with vLLM (engine start included and
reported apart) and once with transformers `generate`; completions per second and ratio.
Without --model, a ~0.8M-parameter character-level model (the demo's shape) with random
weights, which does not change the cost of a token.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from rl.sft import tokens_seen


def demo_shaped_model(work: Path) -> Path:
    from lm.bpe import train_bpe
    from lm.hf_export import export_hf
    from lm.model import ModelConfig, TransformerLM
    from lm.tokenizer import Tokenizer
    from rl.tasks import get_task

    corpus = get_task("addition").write_pretraining_corpus(work / "addition.txt")
    vocab, merges = train_bpe(corpus, 257, ["<|endoftext|>"], progress=False)
    Tokenizer(vocab, merges, ["<|endoftext|>"]).save(work / "tok")
    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(vocab_size=len(vocab), context_length=32, d_model=128, num_layers=4, num_heads=4))
    return export_hf(model, work / "tok", work / "hf")


def plain_trl_sft(model_dir: Path, out: Path, steps: int, batch: int) -> tuple[float, int]:
    """The peer: TRL's SFTTrainer built by hand on the same rows (seconds in train(), tokens seen)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from rl.task_data import addition_problems

    rows = [{"prompt": r["prompt"], "completion": r["answer"]} for r in addition_problems()["train"]]
    args = SFTConfig(
        output_dir=str(out),
        per_device_train_batch_size=batch,
        learning_rate=1e-3,
        max_steps=steps,
        max_length=32,
        completion_only_loss=True,
        use_cpu=True,
        save_strategy="no",
        report_to="none",
        logging_steps=10,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32"),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
    )
    t0 = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t0, tokens_seen(trainer)


def our_sft(model_dir: Path, out: Path, steps: int, batch: int) -> tuple[float, int, float]:
    """Our stage's trainer (rl.sft), then the stage's evaluation apart: (train s, tokens, eval s)."""
    from rl.evaluate import evaluate_model_dir
    from rl.sft import SFTSettings, build_trainer

    settings = SFTSettings(
        task="addition",
        max_steps=steps,
        batch_size=batch,
        learning_rate=1e-3,
        warmup_ratio=0.0,
        max_length=32,
        engine="transformers",
        eval_examples=500,
        eval_samples=1,
    )
    trainer = build_trainer(model_dir, settings, out)
    trainer.args.disable_tqdm = True
    t0 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t0
    trainer.save_model(str(out / "hf"))
    trainer.processing_class.save_pretrained(out / "hf")
    t0 = time.perf_counter()
    trainer.evaluate()
    evaluate_model_dir(out / "hf", settings.load_task(), "test", 500, 0, "transformers", 1)
    return train_s, tokens_seen(trainer), time.perf_counter() - t0


def evaluate_speed(model_dir: Path, engine: str, prompts: int, samples: int) -> tuple[float, float]:
    """(seconds for load + greedy + sampled, seconds to load), completions = prompts × (1 + samples)."""
    from rl.evaluate import evaluate
    from rl.generation import ENGINES
    from rl.tasks import get_task

    t0 = time.perf_counter()
    policy = ENGINES[engine][0](model_dir)
    load_s = time.perf_counter() - t0
    evaluate(policy, engine, get_task("addition"), "test", prompts, 0, samples)
    return time.perf_counter() - t0, load_s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--eval-prompts", type=int, default=500)
    p.add_argument("--samples", type=int, default=8)
    args = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model or demo_shaped_model(work)
        peer_s, peer_tokens = plain_trl_sft(model, work / "peer", args.steps, args.batch)
        ours_s, ours_tokens, stage_eval_s = our_sft(model, work / "ours", args.steps, args.batch)
        print(
            f"SFT, {args.steps} steps × {args.batch} rows: plain TRL {peer_tokens / peer_s:,.0f} tok/s "
            f"({peer_s:.1f} s), "
            f"lmforge {ours_tokens / ours_s:,.0f} tok/s ({ours_s:.1f} s): ratio "
            f"{(ours_tokens / ours_s) / (peer_tokens / peer_s):.2f} "
            f"(same tokens: {peer_tokens == ours_tokens}); the stage's held-out loss + accuracy after training: "
            f"{stage_eval_s:.1f} s"
        )
        completions = args.eval_prompts * (1 + args.samples)
        results = {}
        for engine in ("vllm", "transformers"):
            total, load = evaluate_speed(model, engine, args.eval_prompts, args.samples)
            results[engine] = completions / (total - load)
            print(
                f"evaluate with {engine}: {completions:,} completions in {total - load:.1f} s (+{load:.1f} s to load): "
                f"{results[engine]:,.0f} completions/s"
            )
        print(f"evaluate: vLLM / generate = {results['vllm'] / results['transformers']:.2f}× (engine start excluded)")


if __name__ == "__main__":
    main()
