"""lm-evaluation-harness as the engine: real task files of the installed harness, scored by `lm_eval`'s own
command line and by `lmforge evaluate` on the same model and data, must agree metric for metric and
response for response; lmforge's own suite; sft and grpo on an lm-eval task file; mistakes at load."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.configfile import ConfigError
from lm.harness import HARNESS_DIR, load_harness_tasks

BIN = Path(sys.executable).parent


def harness_tasks_dir() -> Path:
    import lm_eval

    return Path(lm_eval.__file__).parent / "tasks"


def local_copy(src: Path, dst: Path, data_files: dict[str, str] | None) -> None:
    """The harness's file with only its data location changed: dataset_path → json, dataset_name dropped,
    dataset_kwargs → the local files (files without a dataset_path, e.g. an include's user, copied as they are)."""
    lines = src.read_text().splitlines()
    out = [line for line in lines if not re.match(r"^[\"']?(dataset_path|dataset_name|dataset_kwargs)[\"']?:", line)]
    if data_files is not None:
        out = ["dataset_path: json", f"dataset_kwargs: {{data_files: {json.dumps(data_files)}}}"] + out
    dst.write_text("\n".join(out) + "\n")


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def boolean_expressions(n: int, seed: int = 0) -> list[dict]:
    """BIG-Bench Hard's boolean_expressions, generated with their true values."""
    rng = random.Random(seed)

    def expr(depth: int) -> str:
        if depth == 0:
            return rng.choice(["True", "False"])
        kind = rng.choice(["not", "and", "or", "paren"])
        if kind == "not":
            return f"not {expr(depth - 1)}"
        if kind == "paren":
            return f"( {expr(depth - 1)} )"
        return f"{expr(depth - 1)} {kind} {expr(depth - 1)}"

    rows = []
    for _ in range(n):
        e = expr(2)
        rows.append({"input": f"{e} is", "target": str(eval(e))})  # noqa: S307  our own generated expression
    return rows


def stories(data: Path) -> list[list[str]]:
    """Held-out TinyStories passages (blank-line blocks) as sentence lists."""
    text = (data / "tinystories-val-sample" / "tinystories_val.txt").read_text()
    blocks = [" ".join(b.split()) for b in re.split(r"\n\s*\n", text)]
    return [s for s in (re.split(r"(?<=[.!?])\s+", b) for b in blocks if len(b.split()) > 30) if len(s) >= 3]


def wikitext_pages(data: Path, n: int) -> list[dict]:
    text = (data / "wikitext-2-tokenized" / "test.txt").read_text()
    pages = re.split(r"\n(?= = [^=][^\n]* = \n)", text)  # a page starts at a level-1 heading line
    return [{"page": p} for p in pages[1 : n + 1]]


def write_harness_copies(folder: Path, data: Path) -> list[str]:
    """Copies of real harness task files (their data moved to local files beside them) and that data; the
    task names they define."""
    src, d = harness_tasks_dir(), folder / "data"
    d.mkdir(parents=True)
    gsm8k = {"train": str(data / "gsm8k" / "train.jsonl"), "test": str(data / "gsm8k" / "test.jsonl")}
    local_copy(src / "gsm8k" / "gsm8k.yaml", folder / "gsm8k.yaml", gsm8k)
    local_copy(src / "gsm8k" / "gsm8k-cot.yaml", folder / "gsm8k-cot.yaml", gsm8k)
    bbh = {"test": write_jsonl(d / "bbh_boolean.jsonl", boolean_expressions(20))}
    for kind, template in (("zeroshot", "_zeroshot_template_yaml"), ("cot_fewshot", "_cot_fewshot_template_yaml")):
        local_copy(src / "bbh" / kind / template, folder / template, bbh)
        local_copy(src / "bbh" / kind / "boolean_expressions.yaml", folder / f"bbh_{kind}_boolean.yaml", None)
    qa = [json.loads(line) for line in (data / "gsm8k" / "test.jsonl").read_text().splitlines()[:40]]
    nq = [{"question": r["question"].rstrip("?"), "answer": [r["answer"].split("####")[-1].strip()]} for r in qa]
    local_copy(
        src / "nq_open" / "nq_open.yaml",
        folder / "nq_open.yaml",
        {"train": write_jsonl(d / "nq_train.jsonl", nq[20:]), "validation": write_jsonl(d / "nq_val.jsonl", nq[:20])},
    )
    held_out = stories(data)[:60]
    rng = random.Random(0)
    swag = []
    for i, s in enumerate(held_out[:30]):
        endings = [s[-1]] + [held_out[j][-1] for j in rng.sample([j for j in range(60) if j != i], 3)]
        rng.shuffle(endings)
        swag.append(
            {"activity_label": "Story", "ctx_a": " ".join(s[:-1]), "ctx_b": "", "endings": endings,
             "label": str(endings.index(s[-1]))}
        )  # fmt: skip
    local_copy(
        src / "hellaswag" / "hellaswag.yaml",
        folder / "hellaswag.yaml",
        {"train": write_jsonl(d / "swag_train.jsonl", swag[15:]), "validation": write_jsonl(d / "swag.jsonl", swag)},
    )
    shutil.copy(src / "hellaswag" / "utils.py", folder / "utils.py")
    lambada = [{"text": " ".join(s).rstrip('.!?"')} for s in held_out[30:]]
    local_copy(
        src / "lambada" / "lambada_openai.yaml",
        folder / "lambada_openai.yaml",
        {"test": write_jsonl(d / "lambada.jsonl", lambada)},
    )
    pages = wikitext_pages(data, 3)
    wiki = {s: write_jsonl(d / f"wiki_{s}.jsonl", pages) for s in ("train", "validation", "test")}
    local_copy(src / "wikitext" / "wikitext.yaml", folder / "wikitext.yaml", wiki)
    shutil.copy(src / "wikitext" / "preprocess_wikitext.py", folder / "preprocess_wikitext.py")
    return [
        "gsm8k",
        "gsm8k_cot",
        "bbh_zeroshot_boolean_expressions",
        "bbh_cot_fewshot_boolean_expressions",
        "nq_open",
        "hellaswag",
        "lambada_openai",
        "wikitext",
    ]


@pytest.fixture(scope="session")
def random_llama(tmp_path_factory, token_dir) -> Path:
    """A randomly initialised model of ours (2 layers, 2,048 positions: the harness's 1,024-token generations
    fit) exported to a Hugging Face folder with our BPE tokenizer."""
    import torch

    from lm.hf_export import export_hf
    from lm.model import ModelConfig, TransformerLM

    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(vocab_size=512, d_model=64, num_layers=2, num_heads=2, context_length=2048))
    return export_hf(model, token_dir / "tokenizer", tmp_path_factory.mktemp("random-llama") / "hf")


def lm_eval_cli(model: Path, tasks: str, include: Path, out: Path, limit: int) -> tuple[dict, dict]:
    """`lm_eval run` itself: its results and its per-sample logs (task → doc_id → sample)."""
    cmd = [str(BIN / "lm_eval"), "run", "--model", "hf", "--model_args", f"pretrained={model},dtype=auto"]
    cmd += ["--tasks", tasks, "--include_path", str(include), "--device", "cpu", "--batch_size", "8"]
    cmd += ["--limit", str(limit), "--log_samples", "--output_path", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(next(out.rglob("results_*.json")).read_text())
    samples = {}
    for f in out.rglob("samples_*.jsonl"):
        rows = [json.loads(line) for line in f.read_text().splitlines()]
        samples[f.name[len("samples_") :].rsplit("_", 1)[0]] = {(s["doc_id"], s["filter"]): s for s in rows}
    return results, samples


def lmforge_evaluate(model: Path, args: list[str], env: dict) -> dict:
    cmd = [str(BIN / "lmforge"), "evaluate", "--checkpoint", str(model), "--batch-size", "8", *args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    return json.loads((Path(r.stdout.strip().splitlines()[-1]) / "eval.json").read_text())


def as_text(value):
    """lm_eval's sample logs write numpy floats and bools as their text: compare at that level."""
    return [as_text(v) for v in value] if isinstance(value, list) else str(value)


def assert_same_scores(theirs: tuple[dict, dict], ours: dict, tasks: list[str]) -> list[dict]:
    """Every metric of every task equal, and every document's filtered responses equal; the comparison rows."""
    results, samples = theirs
    mine = ours["checkpoints"][0]
    rows = []
    for task in tasks:
        metrics = {k: v for k, v in results["results"][task].items() if "," in k}
        assert metrics, f"lm_eval reported no metric for {task}"
        assert mine["results"][task] | {"alias": None} == results["results"][task] | {"alias": None}, task
        assert len(mine["samples"].get(task, [])) == len(samples.get(task, {})), task  # a document × filter chain each
        for (doc_id, chain), sample in samples.get(task, {}).items():
            got = next(s for s in mine["samples"][task] if (s["doc_id"], s["filter"]) == (doc_id, chain))
            assert as_text(got["filtered_resps"]) == as_text(sample["filtered_resps"]), (task, doc_id, chain)
        rows += [
            {"task": task, "metric": k, "lm_eval": v, "lmforge": mine["results"][task][k]} for k, v in metrics.items()
        ]
    return rows


@pytest.mark.slow
def test_real_harness_task_files_score_in_lmforge_as_in_lm_eval(
    random_llama, data, tmp_path, lmforge_home, prefect_server
):
    """Eight task files of the installed harness (five generate_until: gsm8k, gsm8k-cot, BBH zero-shot and
    CoT few-shot, nq_open; multiple choice: hellaswag; log-likelihood: lambada_openai; rolling: wikitext)
    and lmforge's own suite, one folder, on the same model: equal metrics, equal per-sample filtered responses.
    (Both sides run the same task set: the harness batches a run's log-likelihood requests across its tasks,
    and another batch is other float32 sums.)"""
    folder = tmp_path / "tasks"
    names = write_harness_copies(folder, data)
    # lmforge's own task files in the same run (the same batches); its group file stays out: lm_eval's folder
    # mode reads every *.yaml as a task
    for name in ("tinystories_cloze.yaml", "tinystories_endings.yaml", "tinystories.py"):
        shutil.copy(HARNESS_DIR / name, folder / name)
    names += ["tinystories_cloze", "tinystories_endings"]
    env = {**os.environ, "LMFORGE_HOME": str(lmforge_home), "PREFECT_API_URL": prefect_server}
    theirs = lm_eval_cli(random_llama, str(folder), folder, tmp_path / "lm_eval_out", 2)
    rows = assert_same_scores(
        theirs, lmforge_evaluate(random_llama, ["--task", str(folder), "--limit", "2"], env), names
    )
    print("\n".join(f"{r['task']} {r['metric']}: lm_eval {r['lm_eval']} lmforge {r['lmforge']}" for r in rows))


GSM8K_LOCAL = """
task: gsm8k_local
dataset_path: json
dataset_kwargs:
  data_files: {train: DATA/gsm8k/train.jsonl, test: DATA/gsm8k/test.jsonl}
output_type: generate_until
training_split: train
test_split: test
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_target: "{{answer.split('####')[-1].strip()}}"
generation_kwargs: {until: ["Question:", "</s>"], do_sample: false, max_gen_toks: 32}
filter_list:
  - name: strict-match
    filter: [{function: regex, regex_pattern: "#### (\\\\-?[0-9\\\\.\\\\,]+)"}, {function: take_first}]
metric_list: [{metric: exact_match, aggregation: mean, higher_is_better: true}]
num_fewshot: 2
metadata: {version: 3.0}
"""


def write_gsm8k_local(tmp: Path, data: Path, text: str = GSM8K_LOCAL) -> Path:
    """The task file and the first 100 rows of each GSM8K split beside it."""
    (tmp / "gsm8k").mkdir(exist_ok=True)
    for split in ("train", "test"):
        lines = (data / "gsm8k" / f"{split}.jsonl").read_text().splitlines(keepends=True)[:100]
        (tmp / "gsm8k" / f"{split}.jsonl").write_text("".join(lines))
    path = tmp / "gsm8k_local.yaml"
    path.write_text(text.replace("DATA", str(tmp)))
    return path


def test_an_lm_eval_task_is_a_post_training_task_with_its_own_prompts_and_metric(tmp_path, data):
    """sft/grpo rows of an lm-eval task: the harness's few-shot prompt, its target; the reward is its metric."""
    from lm_eval.defaults import DEFAULT_OTHER_SEED

    from rl.tasks import get_task

    task = get_task(str(write_gsm8k_local(tmp_path, data)))
    harness_task = task.task
    test = task.load("test")
    assert task.name == "gsm8k_local" and len(test) == 100 and task.max_completion_tokens == 32
    # the prompt lm_eval scores: its own fewshot_context with simple_evaluate's few-shot seed, document by document
    harness_task.set_fewshot_seed(seed=DEFAULT_OTHER_SEED)
    docs = harness_task.eval_docs
    assert [r["prompt"] for r in test[:3]] == [harness_task.fewshot_context(docs[i], 2) for i in range(3)]
    assert test[0]["prompt"].count("Question: ") == 3 and test[0]["answer"] == "18"
    assert task.load("train")[0]["target"].startswith(" ")  # target_delimiter + doc_to_target, as in a shot
    # the metric after the harness's filter: "#### 18" counts, text after a stop string does not
    completions = [" 16 - 3 - 4 = 9, 9 * 2 = 18\n#### 18", " not sure.\nQuestion: x\n#### 18", " #### 17"]
    assert task.score([test[0]["prompt"]] * 3, completions, [test[0]] * 3)["exact_match/strict-match"] == [1, 0, 0]


@pytest.mark.parametrize(
    "change,message",
    [
        (("dataset_path: json", "dataset_path: openai/gsm8k"), "which this machine cannot reach; to run offline"),
        (("gsm8k/test.jsonl", "gsm8k/missing.jsonl"), "a data file does not exist"),
        (("{{question}}", "{{query}}"), "a template does not render on the data: 'query' is undefined"),
        (("output_type: generate_until", "output_type: nonsense"), "gsm8k_local.yaml"),
    ],
)
def test_lm_eval_task_mistakes_are_one_line_at_load(tmp_path, data, change, message, monkeypatch):
    from rl.tasks import get_task

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    path = write_gsm8k_local(tmp_path, data, GSM8K_LOCAL.replace(*change))
    with pytest.raises(ConfigError) as e:
        get_task(str(path))
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_unknown_names_and_lm_eval_field_names_in_our_task_files_are_explained(tmp_path):
    from rl.tasks import get_task

    with pytest.raises(ConfigError, match="unknown task 'no_such_task'.*lmforge's built-in tasks: addition"):
        get_task("no_such_task")
    mine = {"name": "t", "data": {"generator": "addition"}, "prompt": "{prompt}", "num_fewshot": 2}
    with pytest.raises(ConfigError, match="num_fewshot is lm-eval's .* with `shots: N`"):
        get_task(mine)


def test_lmforge_suite_tasks_are_built_from_held_out_text(data):
    """The shipped tasks read the TinyStories validation sample, a file no lmforge recipe trains on."""
    harness = load_harness_tasks("tinystories_core")
    cloze, endings = harness.tasks["tinystories_cloze"], harness.tasks["tinystories_endings"]
    assert len(cloze.eval_docs) == 500 and len(endings.eval_docs) == 500
    text = " ".join((data / "tinystories-val-sample" / "tinystories_val.txt").read_text().split())
    doc = cloze.eval_docs[7]
    assert f"{doc['context']} {doc['word']}" in text
    labels = [d["label"] for d in endings.eval_docs]
    assert set(labels) == {0, 1, 2, 3} and max(labels.count(k) for k in range(4)) < 0.35 * len(labels)
    demo = (Path(__file__).resolve().parent.parent / "configs" / "pipeline-demo.yaml").read_text()
    assert "tinystories-val-sample" not in demo.split("clean_data:")[1].split("tokenize:")[0]


def test_pretraining_scores_its_eval_tasks_as_evaluate_scores_the_export(token_dir, tmp_path):
    """`eval_tasks` in pretraining: logged every eval_interval and at the end, drawn beside the loss, and equal
    to what the harness gives the exported checkpoint."""
    from lm.checkpoint import load_model
    from lm.harness import evaluate_model_dir, flat_metrics
    from lm.hf_export import export_hf
    from lm.report import plot_loss_curve
    from lm.train import PretrainConfig, read_metrics, train

    cfg = PretrainConfig(
        model={"d_model": 32, "num_layers": 1, "num_heads": 1, "context_length": 64},
        batch_size=4,
        max_steps=6,
        warmup_steps=1,
        eval_interval=3,
        eval_batches=1,
        compile=False,
        eval_tasks=["tinystories_core"],
        eval_tasks_limit=8,
    )
    summary = train(cfg, token_dir, tmp_path / "run", progress=False)
    rows = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "eval/tinystories_endings/acc" in r]
    assert [r["step"] for r in rows] == [3, 6]
    assert {"eval/tinystories_cloze/perplexity", "eval/tinystories_cloze/acc", "eval/tinystories_core/acc"} <= set(
        rows[0]
    )
    final = export_hf(load_model(tmp_path / "run" / "checkpoint"), token_dir / "tokenizer", tmp_path / "hf")
    again = flat_metrics(evaluate_model_dir(final, load_harness_tasks("tinystories_core"), limit=8))
    assert {f"eval/{k}": v for k, v in again.items()} == {k: v for k, v in rows[-1].items() if k.startswith("eval/")}
    assert summary["eval/tinystories_endings/acc"] == rows[-1]["eval/tinystories_endings/acc"]
    plot_loss_curve(read_metrics(tmp_path / "run" / "metrics.jsonl"), tmp_path / "loss.png")
    assert (tmp_path / "loss.png").stat().st_size > 10_000


def test_pretrain_eval_tasks_that_do_not_load_fail_with_the_config():
    from pydantic import ValidationError

    from lm.train import PretrainConfig

    with pytest.raises(ValidationError, match="eval_tasks: unknown task 'no_such_task'"):
        PretrainConfig(eval_tasks=["no_such_task"])


ADDITION_LM_EVAL = """
task: sums
dataset_path: json
dataset_kwargs: {data_files: {train: DIR/train.jsonl, test: DIR/test.jsonl}}
output_type: generate_until
training_split: train
test_split: test
doc_to_text: "{{q}}"
doc_to_target: "{{a}}"
target_delimiter: ""
generation_kwargs: {until: ["\\n", "<|endoftext|>"], do_sample: false, max_gen_toks: 4}
metric_list: [{metric: exact_match, aggregation: mean, higher_is_better: true}]
metadata: {version: 1.0}
"""


@pytest.mark.slow
def test_sft_grpo_and_evaluate_run_on_an_lm_eval_task_file(addition_model, tmp_path, lmforge_home, prefect_server):
    """An lm-eval task file through the chain from the CLI: sft trains on its targets, grpo on its own metric,
    evaluate scores both checkpoints with the harness."""
    import yaml

    from rl.task_data import addition_problems

    problems = addition_problems()
    for split, n in (("train", 300), ("test", 30)):
        write_jsonl(tmp_path / f"{split}.jsonl", [{"q": p["prompt"], "a": p["answer"]} for p in problems[split][:n]])
    task = tmp_path / "sums.yaml"
    task.write_text(ADDITION_LM_EVAL.replace("DIR", str(tmp_path)))
    env = {**os.environ, "LMFORGE_HOME": str(lmforge_home), "PREFECT_API_URL": prefect_server}
    common = {"engine": "transformers", "eval_examples": 10, "eval_samples": 2}
    (tmp_path / "sft.yaml").write_text(yaml.safe_dump({**common, "batch_size": 16, "learning_rate": 1e-3}))
    (tmp_path / "grpo.yaml").write_text(yaml.safe_dump({**common, "prompts_per_step": 4, "group_size": 4}))

    def cli(*args: str) -> Path:
        r = subprocess.run([str(BIN / "lmforge"), *args], env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
        return Path(r.stdout.strip().splitlines()[-1])

    sft = cli(
        "sft",
        "--checkpoint",
        str(addition_model),
        "--task",
        str(task),
        "--max-steps",
        "3",
        "-c",
        str(tmp_path / "sft.yaml"),
    )
    assert json.loads((sft / "eval.json").read_text())["task"] == "sums"
    grpo = cli(
        "grpo", "--checkpoint", sft.name, "--task", str(task), "--max-steps", "2", "-c", str(tmp_path / "grpo.yaml")
    )
    steps = [json.loads(line) for line in (grpo / "metrics.jsonl").read_text().splitlines()]
    assert steps and all("rewards/exact_match/none/mean" in s for s in steps), steps[0]
    scored = json.loads(
        (
            cli("evaluate", "--checkpoint", sft.name, "--checkpoint", grpo.name, "--task", str(task)) / "eval.json"
        ).read_text()
    )
    assert [c["results"]["sums"]["sample_len"] for c in scored["checkpoints"]] == [30, 30]


def test_a_suite_is_named_from_lmforge_task_folder(tmp_path):
    from lm.harness import suites

    assert suites() == ["tinystories_core"]
    r = subprocess.run(
        [str(BIN / "lmforge"), "evaluate", "--checkpoint", str(tmp_path), "--suite", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "unknown suite 'nope'; the suites: tinystories_core" in r.stderr, r.stderr
