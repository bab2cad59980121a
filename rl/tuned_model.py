"""What a tuning stage (sft, grpo) trains and what it writes: every weight, or a LoRA adapter through peft,
and the model folder the next stage reads.

With `lora:` the base model's weights stay frozen and only the low-rank adapters train (Hu et al. 2021;
TRL's `peft_config`): a fraction of the optimizer state and gradients. The artifact keeps the adapter
(`adapter/`, peft's format, for serving it beside the base) and writes `hf/` with the adapter merged
into the base weights, so `evaluate`, vLLM, the next stage and the lmforge checkpoint conversion read
one plain model folder whatever the stage trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1, description="the adapters' rank")
    alpha: float = Field(32.0, gt=0, description="scaling: the update is (alpha / r) · B·A")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapters' input")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="module names to adapt (e.g. [q_proj, v_proj]); all-linear: every linear but the head"
    )

    def peft_config(self) -> Any:
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=self.target_modules,
            task_type="CAUSAL_LM",
        )


def lora_setting() -> LoraSettings | None:
    """The `lora` field of sft's and grpo's settings (typed as its value, as pydantic's `Field` is)."""
    return Field(None, description="train a LoRA adapter (peft) instead of every weight; None: full fine-tuning")


def save_tuned_model(trainer: Any, source: Path, out_dir: Path) -> None:
    """`out_dir/hf`: the trained model as a plain Hugging Face folder (a LoRA adapter merged into its base,
    the adapter itself in `out_dir/adapter`), with the tokenizer and the source model's generation config;
    TRL's pickled settings (training_args.bin) are not part of it. Call it on every rank."""
    from peft import PeftModel

    hf = out_dir / "hf"
    model = trainer.accelerator.unwrap_model(trainer.model)
    if isinstance(model, PeftModel):
        if not trainer.accelerator.is_main_process:
            return
        model.save_pretrained(out_dir / "adapter")
        model.merge_and_unload().save_pretrained(hf)  # the trainer's model is merged in place: call it last
    else:
        trainer.save_model(str(hf))  # every rank: it gathers sharded weights where there are any
        if not trainer.accelerator.is_main_process:
            return
    trainer.processing_class.save_pretrained(hf)
    generation_config = source / "generation_config.json"
    if generation_config.exists():  # keep eos/pad ids for later generate() calls
        (hf / generation_config.name).write_text(generation_config.read_text())
    (hf / "training_args.bin").unlink(missing_ok=True)
