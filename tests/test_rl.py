"""GRPO: rewards on realistic outputs, config validation, and a real short TRL run."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from common.configfile import ConfigError
from rl.grpo import GRPOSettings, build_trainer, run_grpo
from rl.rewards import answers_match, extract_answer, r1_zero_reward
from rl.task_data import addition_problems
from rl.tasks import get_task
from rl.vllm_cpu import prepare_cpu_engine, small_machine_thread_binding


def test_r1_zero_reward_on_realistic_outputs():
    good = " 16 - 3 - 4 = 9 eggs, 9 * 2 = 18 </think> <answer>18</answer>"
    cases = {
        good: 1.1,
        " thinking </think> <answer>$18</answer>": 1.1,  # units
        " so </think> <answer>\\boxed{18}</answer>": 1.1,  # LaTeX
        " so </think> <answer>17</answer>": 0.1,  # wrong but well formed
        "The answer is 18.": 0.0,  # no tags
        " a </think> <answer>18</answer> <answer>19</answer>": 0.0,  # two answers
        " a </think> <answer>18": 0.0,  # unterminated
    }
    prompts = [""] * len(cases)
    rewards = r1_zero_reward(prompts, list(cases), answer=["18"] * len(cases))
    assert rewards == pytest.approx(list(cases.values()))
    assert r1_zero_reward([""], [" x </think> <answer>1,234 dollars</answer>"], answer=["1234"]) == [pytest.approx(1.1)]
    assert extract_answer("<answer> 3 </answer>") == "3" and extract_answer("none") is None


def test_answers_match_numbers_and_latex():
    assert answers_match("\\frac{1}{2}", "0.5")
    assert answers_match("\\dfrac{3}{4}", "\\frac34")
    assert answers_match("3/4", "\\frac{3}{4}")
    assert not answers_match("\\frac{3}{4}", "\\frac43")
    assert answers_match("1,000", "1000")
    assert not answers_match("12", "21")


def test_addition_task_and_reward():
    splits = addition_problems()
    assert [len(splits[s]) for s in ("train", "val", "test")] == [8000, 1000, 1000]
    assert not {r["prompt"] for r in splits["train"]} & {r["prompt"] for r in splits["test"]}
    assert splits["train"][0]["answer"] == f"{sum(map(int, splits['train'][0]['prompt'][:-1].split('+'))):03d}"
    task = get_task("addition")  # configs/tasks/addition.yaml: exact sum (1.0) + three digits first (0.1)
    rows = [{"prompt": "07+48=", "answer": "055"}] * 5
    rewards = task.score([r["prompt"] for r in rows], ["055", "054", "55", "0x5", " 055\n\n1"], rows)
    assert rewards["total"] == pytest.approx([1.1, 0.1, 0.0, 0.0, 1.1]) and rewards["exact"] == [1.0, 0, 0, 0, 1.0]


def test_noisy_teacher_task_imitates_the_teacher_and_rewards_the_truth(tmp_path):
    """addition_noisy: half the demonstrations slip one digit; sft's targets and the pretraining corpus are the
    teacher's, the rewards and the held-out answers the true sums."""
    task = get_task("addition_noisy")
    train = task.load("train")
    slipped = [r for r in train if r["target"] != r["answer"]]
    assert 0.45 < len(slipped) / len(train) < 0.55
    assert all(sum(a != b for a, b in zip(r["target"], r["answer"])) == 1 for r in slipped)  # one digit
    assert [r["answer"] for r in task.load("test")] == [r["answer"] for r in addition_problems()["test"]]
    corpus = task.write_pretraining_corpus(tmp_path / "corpus.txt").read_text().split("\n\n")
    assert corpus[0].strip() == train[0]["prompt"] + train[0]["target"]
    assert {r["prompt"] + r["target"] for r in slipped} <= {block.strip() for block in corpus}
    row = slipped[0]
    assert task.score([row["prompt"]], [row["target"]], [row])["exact"] == [0.0]
    assert task.score([row["prompt"]], [row["answer"]], [row])["exact"] == [1.0]
    with pytest.raises(ConfigError, match="generated data"):
        get_task({"name": "t", "data": {"path": "x.jsonl", "teacher_errors": 0.5}, "prompt": "{q}"})


def test_grpo_settings_are_validated_at_load():
    with pytest.raises(ValidationError, match="unknown task"):
        GRPOSettings(task="chess")
    with pytest.raises(ValidationError, match="truncates every answer"):
        GRPOSettings(max_completion_tokens=1)
    with pytest.raises(ValidationError):
        GRPOSettings(group_size=1)
    with pytest.raises(ValidationError, match=r"12 rollouts .* do not split evenly over processes=5"):
        GRPOSettings(prompts_per_step=3, group_size=4, processes=5)
    assert GRPOSettings(prompts_per_step=3, group_size=4, processes=6).processes == 6


def check_short_run(result: dict, out: Path, model_dir: Path, engine: str) -> None:
    from safetensors.torch import load_file

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and all("reward" in r for r in rows)
    # each reward of the task file logged on its own, and whether any group had reward variance
    assert all({"rewards/exact/mean", "rewards/format/mean", "frac_reward_zero_std"} <= set(r) for r in rows)
    # the rollouts (and both evaluations) came from the engine asked for
    assert {r["engine"] for r in rows} == {result["engine"]} == {engine}
    assert {result[when][mode]["engine"] for when in ("before", "after") for mode in ("greedy", "sampled")} == {engine}
    before, after = load_file(model_dir / "model.safetensors"), load_file(out / "hf" / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    for when in ("before", "after"):
        greedy = result[when]["greedy"]
        # accuracy is a count of exact sums over the 50 problems: the shown examples agree with their rewards
        assert greedy["n"] == 50 and (greedy["accuracy"] * 50) == pytest.approx(round(greedy["accuracy"] * 50))
        assert all(
            (ex["reward"] >= 1.0)
            == (ex["completion"].strip()[:3] == f"{sum(map(int, ex['prompt'].rstrip('=').split('+'))):03d}")
            for ex in greedy["examples"]
        )
    for mode in ("greedy", "sampled"):  # the lift on the same rows, with its interval
        lift = result["lift"][mode]
        assert lift["difference"] == pytest.approx(
            result["after"][mode]["accuracy"] - result["before"][mode]["accuracy"]
        )
        assert lift["ci95"][0] <= lift["difference"] <= lift["ci95"][1] and lift["n"] == 50


SHORT_RUN = {
    "task": "addition",
    "max_steps": 3,
    "prompts_per_step": 4,
    "group_size": 4,
    "learning_rate": 1e-3,
    "eval_examples": 50,
}


@pytest.mark.slow
def test_short_grpo_run_with_transformers_rollouts(addition_model, tmp_path):
    result = run_grpo(addition_model, GRPOSettings(**SHORT_RUN, engine="transformers"), tmp_path)
    check_short_run(result, tmp_path, addition_model, "transformers")


@pytest.mark.slow
def test_grpo_flow_with_vllm_rollouts(addition_model, prefect_harness, lmforge_home):
    """The stage as users run it: vLLM rollouts, the tuned model in both formats, cached."""
    from flows.grpo import grpo

    settings = GRPOSettings(**SHORT_RUN, engine="vllm")
    out = Path(grpo(str(addition_model), settings))
    check_short_run(json.loads((out / "eval.json").read_text()), out, addition_model, "vllm")
    assert (out / "reward.png").stat().st_size > 0 and (out / "checkpoint" / "model.safetensors").is_file()
    assert {p.name for p in out.iterdir()} == {
        "hf",
        "checkpoint",
        "metrics.jsonl",
        "eval.json",
        "reward.png",
        "manifest.json",
    }
    assert (out / "manifest.json").is_file()
    from flows.registry import STAGES

    headline = STAGES["grpo"].headline(out)
    assert any(re.match(r"training: reward [\d.]+ → [\d.]+ .*% of groups had no reward variance", x) for x in headline)
    assert any("95% interval" in x for x in headline), headline
    assert Path(grpo(str(addition_model), settings)) == out  # cache hit


def test_prompts_that_cannot_fit_fail_before_training(addition_model):
    from transformers import AutoTokenizer

    from rl.grpo import check_lengths

    tok = AutoTokenizer.from_pretrained(addition_model)
    prompts = tok([r["prompt"] for r in addition_problems()["train"]])["input_ids"]
    assert check_lengths(GRPOSettings(), prompts, 32) == 32  # 6-token prompts + 4: capped at the model's context
    assert check_lengths(GRPOSettings(max_prompt_tokens=8), prompts, 32) == 12
    with pytest.raises(ValueError, match="over max_prompt_tokens=4"):
        check_lengths(GRPOSettings(max_prompt_tokens=4), prompts, 32)
    with pytest.raises(ValueError, match="exceeds the model's context of 8"):
        check_lengths(GRPOSettings(), prompts, 8)


@pytest.mark.slow
@pytest.mark.parametrize("lora", [None, {"r": 8, "alpha": 16}], ids=["full", "lora"])
def test_vllm_rollouts_use_the_synced_weights(addition_model, tmp_path, lora):
    """After TRL's weight sync, vLLM's log-probs equal the trained model's (and differ from the start); with
    `lora`, the adapted policy's (TRL merges the adapter for each sync), and the saved artifact's merged model
    folder gives the same log-probs."""
    from vllm import SamplingParams

    from rl.tuned_model import save_tuned_model

    settings = GRPOSettings(
        task="addition", max_steps=2, prompts_per_step=4, group_size=4, learning_rate=3e-2, engine="vllm", lora=lora
    )
    trainer = build_trainer(addition_model, settings, tmp_path)
    trainer.train()
    trainer.vllm_generation.sync_weights()
    prompt = "07+48=055"
    ids = trainer.processing_class(prompt)["input_ids"]
    out = trainer.vllm_generation.llm.generate(
        [prompt], SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False
    )[0]
    vllm_logps = torch.tensor([next(iter(lp.values())).logprob for lp in out.prompt_logprobs[1:]])

    def hf_logps(model) -> torch.Tensor:
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, :-1].float()
        return torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]

    from transformers import AutoModelForCausalLM

    trained = hf_logps(trainer.model)
    initial = hf_logps(AutoModelForCausalLM.from_pretrained(addition_model, dtype="float32"))
    assert (trained - initial).abs().max() > 1e-2  # the steps moved the policy...
    torch.testing.assert_close(vllm_logps, trained, atol=1e-4, rtol=0)  # ...and vLLM samples from the moved policy
    save_tuned_model(trainer, addition_model, tmp_path / "out")
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").exists() == (lora is not None)
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "hf", dtype="float32")
    torch.testing.assert_close(hf_logps(saved), trained, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_vllm_and_generate_agree_on_greedy_evaluation(addition_model):
    from rl.evaluate import evaluate_model_dir

    task = get_task("addition")
    vllm = evaluate_model_dir(addition_model, task, limit=200, engine="vllm")["greedy"]
    hf = evaluate_model_dir(addition_model, task, limit=200, engine="transformers")["greedy"]
    assert (vllm["engine"], hf["engine"]) == ("vllm", "transformers")
    assert vllm["accuracy"] == hf["accuracy"] and vllm["examples"] == hf["examples"]


def test_unsupported_head_dim_fails_before_vllm_starts():
    prepare_cpu_engine({"hidden_size": 64, "num_attention_heads": 2}, "model")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="head_dim 16 is not supported by vLLM on CPU"):
            prepare_cpu_engine({"hidden_size": 64, "num_attention_heads": 4}, "model")
        with pytest.raises(ValueError, match="head_dim 16 is not supported"):  # an explicit head_dim wins
            prepare_cpu_engine({"hidden_size": 64, "num_attention_heads": 2, "head_dim": 16}, "model")


def test_small_machines_give_vllm_every_cpu():
    """vLLM's own binding keeps a CPU for its engine loop: on a small machine the worker gets all
    usable CPUs in vLLM's list syntax instead; on a larger one vLLM's choice stands."""
    import os

    from vllm.utils import cpu_resource_utils

    cpus = sorted(os.sched_getaffinity(0))
    binding = small_machine_thread_binding(max_cpus=len(cpus))
    assert cpu_resource_utils.parse_id_list(binding) == cpus
    assert small_machine_thread_binding(max_cpus=len(cpus) - 1) is None


def test_gsm8k_and_math500_tasks_load(data):
    for name in ("gsm8k", "math500"):
        rows = get_task(name).load("test")
        assert len(rows) >= 500 and "<think>" in rows[0]["prompt"] and rows[0]["answer"]


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["sft", "grpo"])
def test_kill_9_mid_training_then_rerun_resumes_from_the_last_checkpoint(
    stage, addition_model, lmforge_home, tmp_path, prefect_server
):
    """kill -9 once a checkpoint is in the work dir: the rerun says it resumes from that step, logs each later
    step once (none of the earlier ones again) and publishes."""
    import signal
    import subprocess
    import sys
    import time

    import yaml

    settings = {"task": "addition", "engine": "transformers", "eval_examples": 10, "eval_samples": 2}
    settings |= (
        {"max_steps": 60, "batch_size": 64, "checkpoint_steps": 4}
        if stage == "sft"
        else {**SHORT_RUN, "max_steps": 12, "checkpoint_steps": 2}
    )
    cfg = tmp_path / f"{stage}.yaml"
    cfg.write_text(yaml.safe_dump(settings))
    cmd = [str(Path(sys.executable).parent / "lmforge"), stage, "--checkpoint", str(addition_model), "-c", str(cfg)]
    env = {
        **os.environ,
        "LMFORGE_HOME": str(lmforge_home),
        "PREFECT_API_URL": prefect_server,
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while not list((lmforge_home / "work").glob(f"{stage}-*/trl/checkpoint-*/trainer_state.json")):
        assert proc.poll() is None, f"{stage} exited before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = int(next((lmforge_home / "work").glob(f"{stage}-*/trl/checkpoint-*")).name.split("-")[1])
    assert saved < settings["max_steps"], "the run finished before it could be killed"
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    resumed = int(re.search(r"resuming from \S+checkpoint-(\d+) \(step \d+\)", r.stderr).group(1))
    assert resumed >= saved
    out = Path(r.stdout.strip().splitlines()[-1])
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == settings["max_steps"], steps
    assert not (out / "trl").exists()


def test_task_files_read_as_datasets_reads_them_where_its_loaders_agree(tmp_path, data):
    """Task rows come from `datasets` for its own folders and from pyarrow/pandas for files: on real GSM8K rows as
    JSONL and Parquet the rows equal `datasets.load_dataset`'s; where its loaders do not do the same, ours keep
    what a task needs: a CSV answer `055` stays text (datasets' CSV loader infers 55), and a broken JSONL line
    is named by file and line (datasets says only what the JSON decoder saw)."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    from common.configfile import ConfigError
    from rl.task_data import read_rows

    datasets.disable_progress_bars()
    cache = str(tmp_path / "hf-cache")
    lines = (data / "gsm8k" / "test.jsonl").read_text().splitlines()[:50]
    (tmp_path / "gsm8k.jsonl").write_text("\n".join(lines) + "\n")
    rows = read_rows(tmp_path / "gsm8k.jsonl")
    assert len(rows) == 50
    assert rows == list(
        datasets.load_dataset("json", data_files=str(tmp_path / "gsm8k.jsonl"), cache_dir=cache)["train"]
    )
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "gsm8k.parquet")
    assert read_rows(tmp_path / "gsm8k.parquet") == rows
    assert rows == list(
        datasets.load_dataset("parquet", data_files=str(tmp_path / "gsm8k.parquet"), cache_dir=cache)["train"]
    )
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    assert read_rows(tmp_path / "saved") == rows

    (tmp_path / "sums.csv").write_text("prompt,answer\n27+28=,055\n00+12=,012\n")
    assert [r["answer"] for r in read_rows(tmp_path / "sums.csv")] == ["055", "012"]
    theirs = datasets.load_dataset("csv", data_files=str(tmp_path / "sums.csv"), cache_dir=cache)["train"]
    assert [r["answer"] for r in theirs] == [55, 12]  # when this fails, datasets' CSV loader keeps text: use it

    (tmp_path / "broken.jsonl").write_text(lines[0] + "\n{not json\n")
    with pytest.raises(ConfigError, match=r"broken\.jsonl:2: not a JSON object"):
        read_rows(tmp_path / "broken.jsonl")
