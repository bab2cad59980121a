"""The model families users bring (benchmarks/family_models.py: tiny Llama, Qwen2, Qwen3, Gemma-3 and Mistral
models with GPT-2's real tokenizer in each family's chat format), each taken through sft → grpo → evaluate."""

from __future__ import annotations

import json

import pytest

from benchmarks.family_models import CHAT, CHAT_SUMS, FAMILIES, build_model, family_config


@pytest.mark.parametrize("family", FAMILIES)
def test_each_familys_chat_format_is_what_sft_trains_and_generation_continues(family, data, tmp_path):
    """A chat task's prompt is the family's template encoded as TRL encodes it (one begin-of-text, the one the
    template writes), and an sft row is exactly that prompt followed by the assistant turn: the answer and the
    family's end-of-turn token, never tokens merged across the boundary."""
    from transformers import AutoTokenizer

    from rl.evaluate import prompt_ids
    from rl.sft import sft_rows
    from rl.tasks import get_task

    tok = AutoTokenizer.from_pretrained(build_model(family, data, tmp_path / "model"))
    task = get_task(CHAT_SUMS)
    rows = task.load("train")[:3]
    prompts = prompt_ids(task, rows, tok)
    rendered = tok.decode(prompts[0])
    assert rendered.count(tok.bos_token) == (0 if family.startswith("qwen") else 1)  # Llama: not two
    assert "Add." in rendered and rows[0]["prompt"][1]["content"] in rendered
    for row, prompt, train in zip(rows, prompts, sft_rows(task, "train", tok)):
        cut = train["completion_mask"].index(1)
        assert train["input_ids"][:cut] == prompt
        turn = tok.decode(train["input_ids"][cut:])
        assert turn.startswith(row["answer"]) and CHAT[family][1] in turn, turn


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_goes_through_sft_grpo_and_evaluate(family, data, tmp_path):
    """The library chain on each family (transformers generation) on a chat task, through the family's template:
    every stage runs, the tuned weights move, and each stage's output folder is a model of the same family the
    next stage loads."""
    import torch
    from safetensors.torch import load_file

    from rl.evaluate import evaluate_model_dir
    from rl.grpo import GRPOSettings, run_grpo
    from rl.sft import SFTSettings, run_sft
    from rl.tasks import get_task

    base = build_model(family, data, tmp_path / "base")
    common = dict(task=CHAT_SUMS, eval_examples=8, eval_samples=2, engine="transformers")
    run_sft(base, SFTSettings(**common, max_steps=3, batch_size=8, learning_rate=1e-3), tmp_path / "sft")
    grpo = run_grpo(
        tmp_path / "sft" / "hf",
        GRPOSettings(**common, max_steps=2, prompts_per_step=2, group_size=2, learning_rate=1e-3),
        tmp_path / "grpo",
    )
    assert grpo["after"]["greedy"]["n"] == 8
    scores = evaluate_model_dir(tmp_path / "grpo" / "hf", get_task(CHAT_SUMS), "test", 8, 0, "transformers", 2)
    assert scores["greedy"]["n"] == 8 and 0.0 <= scores["sampled"]["accuracy"] <= 1.0
    config = json.loads((tmp_path / "grpo" / "hf" / "config.json").read_text())
    assert config["model_type"] == family_config(family).model_type
    before, after = load_file(base / "model.safetensors"), load_file(tmp_path / "grpo" / "hf" / "model.safetensors")
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)


def test_a_tokenizer_without_its_vocabulary_is_one_line_before_training(data, tmp_path):
    """transformers 5 builds an empty GPT2TokenizerFast from the old `vocab_file=` argument: every prompt encodes
    to no tokens, SFT would train at loss 0 and generation fail with an IndexError; sft says so first."""
    from transformers import GPT2TokenizerFast

    from rl.sft import SFTSettings, build_trainer

    model = build_model("llama", data, tmp_path / "model")
    fixtures = data / "cs336-a1-fixtures"
    GPT2TokenizerFast(
        vocab_file=str(fixtures / "gpt2_vocab.json"), merges_file=str(fixtures / "gpt2_merges.txt")
    ).save_pretrained(model)
    with pytest.raises(ValueError, match=r"addition prompt 0 \('.*'\) encodes to no tokens .* vocabulary loaded"):
        build_trainer(model, SFTSettings(task="addition", max_steps=1, batch_size=4), tmp_path / "run")
