"""The model families users bring: tiny random-initialised Llama, Qwen2, Qwen3, Gemma-3 and Mistral models,
built here from their transformers configs with GPT-2's real tokenizer (the shared data's vocabulary and
merges, no pad token, as Llama's and GPT-2's ship), each taken through sft → grpo → evaluate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

LMFORGE = str(Path(sys.executable).parent / "lmforge")

# head_dim 32: a size vLLM's CPU attention kernels support; 2 query heads sharing 1 key/value head (GQA)
SHAPE = dict(
    vocab_size=50257,  # GPT-2's
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    max_position_embeddings=64,
    bos_token_id=50256,
    eos_token_id=50256,
)


def family_config(family: str):
    from transformers import Gemma3TextConfig, LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config

    return {
        "llama": lambda: LlamaConfig(**SHAPE, tie_word_embeddings=True),
        "qwen2": lambda: Qwen2Config(**SHAPE, tie_word_embeddings=True),
        "qwen3": lambda: Qwen3Config(**SHAPE, head_dim=32, tie_word_embeddings=True),  # q/k norms
        # sliding-window layers every few layers, its own attention scaling, untied head
        "gemma3": lambda: Gemma3TextConfig(**SHAPE, head_dim=32, sliding_window=16, query_pre_attn_scalar=32),
        "mistral": lambda: MistralConfig(**SHAPE, sliding_window=16),
    }[family]()


FAMILIES = ["llama", "qwen2", "qwen3", "gemma3", "mistral"]


def build_model(family: str, data: Path, out: Path) -> Path:
    """A random-initialised model of the family, saved as a Hugging Face folder with GPT-2's tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2TokenizerFast

    fixtures = data / "cs336-a1-fixtures"
    merges = (fixtures / "gpt2_merges.txt").read_text().splitlines()
    tokenizer = GPT2TokenizerFast(
        vocab=json.loads((fixtures / "gpt2_vocab.json").read_text()),
        merges=[tuple(m.split()) for m in merges if m and not m.startswith("#version")],
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(family_config(family)).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_goes_through_sft_grpo_and_evaluate(family, data, tmp_path):
    """The library chain on each family (transformers generation): every stage runs, the tuned weights move, and
    each stage's output folder is a model of the same family the next stage loads."""
    import torch
    from safetensors.torch import load_file

    from rl.evaluate import evaluate_model_dir
    from rl.grpo import GRPOConfig, run_grpo
    from rl.sft import SFTConfig, run_sft
    from rl.tasks import get_task

    base = build_model(family, data, tmp_path / "base")
    common = dict(task="addition", eval_examples=8, eval_samples=2, engine="transformers")
    run_sft(base, SFTConfig(**common, max_steps=3, batch_size=8, learning_rate=1e-3), tmp_path / "sft")
    grpo = run_grpo(
        tmp_path / "sft" / "hf",
        GRPOConfig(**common, max_steps=2, prompts_per_step=2, group_size=2, learning_rate=1e-3),
        tmp_path / "grpo",
    )
    assert grpo["after"]["greedy"]["n"] == 8
    scores = evaluate_model_dir(tmp_path / "grpo" / "hf", get_task("addition"), "test", 8, 0, "transformers", 2)
    assert scores["greedy"]["n"] == 8 and 0.0 <= scores["sampled"]["accuracy"] <= 1.0
    config = json.loads((tmp_path / "grpo" / "hf" / "config.json").read_text())
    assert config["model_type"] == family_config(family).model_type
    before, after = load_file(base / "model.safetensors"), load_file(tmp_path / "grpo" / "hf" / "model.safetensors")
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_a_family_model_folder_through_the_cli_with_vllm(data, tmp_path, lmforge_home, prefect_server):
    """`--checkpoint DIR` on a Qwen3 folder: sft, grpo (vLLM rollouts, two processes) and evaluate from the
    command line, each stage reading the one before it by key."""
    import os

    import yaml

    base = build_model("qwen3", data, tmp_path / "qwen3")
    env = {**os.environ, "LMFORGE_HOME": str(lmforge_home), "PREFECT_API_URL": prefect_server}
    small = {"eval_examples": 8, "eval_samples": 2}
    (tmp_path / "sft.yaml").write_text(yaml.safe_dump({**small, "batch_size": 8, "engine": "transformers"}))
    (tmp_path / "grpo.yaml").write_text(
        yaml.safe_dump({**small, "prompts_per_step": 2, "group_size": 2, "engine": "vllm", "processes": 2})
    )

    def run(*args: str) -> Path:
        r = subprocess.run([LMFORGE, *args], capture_output=True, text=True, env=env, timeout=600, check=False)
        assert r.returncode == 0, r.stderr[-3000:]
        return Path(r.stdout.strip().splitlines()[-1])

    task = ["--task", "addition", "--max-steps", "2"]
    sft = run("sft", "--checkpoint", str(base), *task, "-c", str(tmp_path / "sft.yaml"))
    grpo = run("grpo", "--checkpoint", sft.name, *task, "-c", str(tmp_path / "grpo.yaml"))
    evaluation = run("evaluate", "--checkpoint", grpo.name, "--task", "addition", "--limit", "8", "--samples", "2")
    result = json.loads((grpo / "eval.json").read_text())
    assert (result["engine"], result["processes"]) == ("vllm", 2)  # two ranks, each with its colocated vLLM
    assert [json.loads(line)["step"] for line in (grpo / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert json.loads((grpo / "hf" / "config.json").read_text())["model_type"] == "qwen3"
    assert (evaluation / "eval.json").is_file()


def test_a_tokenizer_without_its_vocabulary_is_one_line_before_training(data, tmp_path):
    """transformers 5 builds an empty GPT2TokenizerFast from the old `vocab_file=` argument: every prompt encodes
    to no tokens, SFT would train at loss 0 and generation fail with an IndexError; sft says so first."""
    from transformers import GPT2TokenizerFast

    from rl.sft import SFTConfig, build_trainer

    model = build_model("llama", data, tmp_path / "model")
    fixtures = data / "cs336-a1-fixtures"
    GPT2TokenizerFast(
        vocab_file=str(fixtures / "gpt2_vocab.json"), merges_file=str(fixtures / "gpt2_merges.txt")
    ).save_pretrained(model)
    with pytest.raises(ValueError, match=r"addition prompt 0 \('.*'\) encodes to no tokens .* vocabulary loaded"):
        build_trainer(model, SFTConfig(task="addition", max_steps=1, batch_size=4), tmp_path / "run")
