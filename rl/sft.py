"""Supervised fine-tuning of a checkpoint on a task's train split, with TRL's `SFTTrainer`.

Each train row becomes a prompt-completion pair of token ids: the task's prompt, encoded as
evaluation and GRPO encode it, and its `completion` template (default: the answer). The loss is
on the completion tokens only (TRL's `completion_only_loss`; for chat rows the assistant turn),
so the model learns to answer, not to reproduce prompts. After training: the held-out loss on the test split and the
task's held-out accuracy through `rl.evaluate`, the same code the `evaluate` stage runs.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Literal

from pydantic import Field

from lm.determinism import deterministic_mode, deterministic_setting
from rl.evaluate import evaluate_model_dir, is_chat, prompt_texts
from rl.generation import encode_prompts
from rl.resume import resume_point
from rl.settings import TaskSettings
from rl.tasks import Task
from rl.trainer import METRICS, common_arguments, finish_run, metrics_file
from rl.tuned_model import LoraSettings, lora_setting


class SFTSettings(TaskSettings):
    learning_rate: float = Field(1e-4, gt=0)
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    max_steps: int = Field(200, ge=1)
    batch_size: int = Field(32, ge=1)
    max_length: int | None = Field(
        None, ge=2, description="tokens per example (prompt + completion); None: the model's context"
    )
    packing: bool = Field(
        False,
        description="pack examples into max_length rows (TRL's BFD packing, padding-free, position ids restart "
        "per example; examples stay apart only with an attention that reads them, e.g. flash_attention_2)",
    )
    weight_decay: float = Field(0.0, ge=0)
    eval_examples: int = Field(500, ge=1)
    eval_samples: int = Field(8, ge=1, description="sampled completions per held-out prompt (pass@k up to this k)")
    seed: int = 0
    deterministic: bool = deterministic_setting()
    lora: LoraSettings | None = lora_setting()
    checkpoint_steps: int = Field(
        50, ge=1, json_schema_extra={"cache_key": False}, description="steps between resumable checkpoints"
    )


def sft_rows(task: Task, split: str, tokenizer) -> list[dict]:
    """Training rows as token ids: the prompt exactly as evaluation and GRPO ask it (as `prompt_ids`), then the
    completion's tokens, with the loss on the completion alone (TRL's `completion_mask`).

    TRL would tokenize prompt + completion as one text, and a tokenizer may then merge tokens across the
    boundary (GPT-2's BPE splits Llama-3's closing "\n\n" into "\n", "\n055"): the model would train on a
    prompt it is never asked. Encoding the two apart trains on exactly the sequence generation continues."""
    rows = task.load(split)
    texts = prompt_texts(task, rows, tokenizer)
    prompts = encode_prompts(tokenizer, texts, task.name, chat=is_chat(rows))
    return [
        {"input_ids": p + c, "completion_mask": [0] * len(p) + [1] * len(c)}
        for p, c in zip(prompts, completion_ids(task, rows, texts, tokenizer))
    ]


def completion_ids(task: Task, rows: list[dict], prompts: list[str], tokenizer) -> list[list[int]]:
    """What sft teaches after each prompt (`prompts`: the rows' rendered prompts): a text completion and the
    end-of-text token (as TRL appends it); for chat prompts, the assistant turn as the model's template writes it
    after the generation prompt (its end of turn included)."""
    targets = [task.completion(r) for r in rows]
    if not is_chat(rows):
        end = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        return [ids + end for ids in tokenizer(targets, add_special_tokens=False)["input_ids"]]
    turns = []
    for i, (row, prompt, target) in enumerate(zip(rows, prompts, targets)):
        whole = tokenizer.apply_chat_template(
            [*row["prompt"], {"role": "assistant", "content": target}], tokenize=False
        )
        if not whole.startswith(prompt):
            raise ValueError(
                f"{task.name} row {i}: the model's chat template writes the conversation {whole[:80]!r} so that it "
                f"does not start with the prompt it writes for generation {prompt[:80]!r}: the assistant turn "
                "cannot be cut out of it"
            )
        turns.append(tokenizer(whole[len(prompt) :], add_special_tokens=False)["input_ids"])
    return turns


def trl_config(s: SFTSettings, run_dir: Path, max_length: int):
    import trl

    return trl.SFTConfig(
        **common_arguments(s, run_dir),
        per_device_train_batch_size=s.batch_size,
        per_device_eval_batch_size=s.batch_size,
        learning_rate=s.learning_rate,
        lr_scheduler_type=s.lr_scheduler,
        warmup_steps=int(s.warmup_ratio * s.max_steps),
        weight_decay=s.weight_decay,
        max_steps=s.max_steps,
        max_length=max_length,
        packing=s.packing,
        completion_only_loss=True,
        logging_steps=max(1, s.max_steps // 50),
        eval_strategy="no",
        dataloader_num_workers=0,
    )


def check_lengths(task: Task, rows: list[dict], max_length: int, context: int) -> None:
    """Before training: an example cut at max_length would lose its answer (or all of it); say
    which and what to change."""
    lengths = [len(r["input_ids"]) for r in rows]
    over = [i for i, n in enumerate(lengths) if n > max_length]
    if over:
        longest = max(over, key=lambda i: lengths[i])
        raise ValueError(
            f"{len(over)} of {len(rows)} {task.name} train rows are longer than max_length={max_length} tokens "
            f"(the longest, row {longest}: {lengths[longest]}): raise max_length (the model's context is {context}) "
            "or shorten the prompt"
        )


def build_trainer(model_dir: Path, settings: SFTSettings, run_dir: Path, callbacks: list | None = None):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    task = settings.load_task()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32")
    max_length = settings.max_length or model.config.max_position_embeddings
    train, test = sft_rows(task, "train", tokenizer), sft_rows(task, "test", tokenizer)[: settings.eval_examples]
    check_lengths(task, train, max_length, model.config.max_position_embeddings)
    return SFTTrainer(
        model=model,
        args=trl_config(settings, run_dir, max_length),
        train_dataset=Dataset.from_list(train),
        eval_dataset=Dataset.from_list(test),
        processing_class=tokenizer,
        callbacks=callbacks,
        peft_config=settings.lora.peft_config() if settings.lora else None,
    )


def tokens_seen(trainer) -> int:
    """Tokens the trainer consumed (TRL logs a running `num_tokens`)."""
    return int(max((h.get("num_tokens", 0) for h in trainer.state.log_history), default=0))


def run_sft(model_dir: Path, settings: SFTSettings, out_dir: Path, work_dir: Path | None = None) -> dict:
    """Train (resuming from `work_dir`'s last checkpoint), then measure held-out loss and accuracy; writes
    `hf/`, `metrics.jsonl`, `eval.json` in `out_dir`."""
    with deterministic_mode(settings.deterministic):  # restored after: the next stage may run in this process
        return _run_sft(model_dir, settings, out_dir, work_dir)


def _run_sft(model_dir: Path, settings: SFTSettings, out_dir: Path, work_dir: Path | None) -> dict:
    task = settings.load_task()
    run_dir = work_dir or out_dir
    resume = resume_point(run_dir, run_dir / METRICS)
    trainer = build_trainer(model_dir, settings, run_dir, [metrics_file(run_dir / METRICS, "loss")])
    t0 = time.time()
    with redirect_stdout(sys.stderr):  # the trainer's per-step dicts: stdout holds the artifact path alone
        trainer.train(resume_from_checkpoint=resume)
        train_s = time.time() - t0
        heldout = trainer.evaluate()
    finish_run(trainer, Path(model_dir), out_dir, run_dir)
    after = evaluate_model_dir(
        out_dir / "hf", task, "test", settings.eval_examples, settings.seed, settings.engine, settings.eval_samples
    )
    result = {
        "task": task.name,
        "train_seconds": round(train_s, 1),
        "steps": settings.max_steps,
        "tokens_seen": tokens_seen(trainer),
        "heldout_loss": heldout.get("eval_loss"),
        "after": after,
    }
    (out_dir / "eval.json").write_text(json.dumps(result, indent=2))
    return result
