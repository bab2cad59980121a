"""The `pretrain` flow: a tokenize artifact + PretrainConfig → checkpoint, HF export, report."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task

from flows.registry import KEY_PARAMETERS, StageSpec
from flows.stage import run_stage
from flows.store import ArtifactStore, manifest_summary
from flows.ui import publish_figures
from lm.harness import load_harness_tasks
from lm.report import write_pretrain_report
from lm.train import PretrainConfig, check_data_fits, resolve_auto, train

STAGE = "pretrain"


@task(name="train")
def train_task(config: PretrainConfig, data_dir: Path, work_dir: Path) -> dict:
    """Train, resuming from work_dir/checkpoint when a previous attempt was interrupted."""
    return train(config, data_dir, work_dir)


@flow(name="pretrain", log_prints=True)
def pretrain(
    tokenize_artifact: str,
    config: PretrainConfig = PretrainConfig(),
    force: bool = False,
    ui_key: str | None = "pretrain-summary",
) -> str:
    """Pretrain a TransformerLM on a tokenize artifact; returns the artifact directory.
    `ui_key`: the Prefect artifact's key (None: the run's own page only, as sweep points)."""
    logger = get_run_logger()
    tok_art = ArtifactStore().find(tokenize_artifact, KEY_PARAMETERS["tokenize_artifact"], "tokenize_artifact")
    config = resolve_auto(config)  # no `auto` enters the key
    check_data_fits(config, tok_art.path)

    def build(out_dir: Path, work_dir: Path) -> dict:
        summary = train_task(config, tok_art.path, work_dir)
        samples = write_pretrain_report(work_dir, out_dir, tok_art.path / "tokenizer", config)
        for s in samples:
            logger.info("sample: %s%s", s["prompt"], s["completion"])
        publish_figures(
            ui_key,
            "pretrain: final loss, samples, loss curve",
            _summary_markdown(summary, samples),
            [out_dir / "loss.png"],
        )
        summary["samples"] = samples
        return summary

    # eval tasks' files and data shape metrics.jsonl: their content enters the key
    raw = load_harness_tasks(",".join(config.eval_tasks)).files() if config.eval_tasks else []
    artifact = run_stage(STAGE, config, build, inputs=[tok_art], raw_files=raw, force=force)
    return str(artifact.path)


def _summary_markdown(summary: dict, samples: list[dict]) -> str:
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in summary.items()]
    lines += ["", "**samples**", ""] + [f"- *{s['prompt']}*{s['completion']}" for s in samples]
    return "\n".join(lines)


def _pretrain_rows(path: Path) -> list[dict]:
    summary = manifest_summary(path)
    return [{k: (f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in summary.items() if k != "samples"}]


def _pretrain_headline(path: Path) -> list[str]:
    p = manifest_summary(path)
    tasks = [f"{k[len('eval/') :]} {v:.3f}" for k, v in p.items() if k.startswith("eval/")]
    return (
        [f"{p['params']:,} params, {p['tokens']:,} tokens, validation loss {p['final_val_loss']:.3f}"]
        + ([f"held-out tasks (lm-eval): {', '.join(tasks)}"] if tasks else [])
        + [f"  {s['prompt']}{s['completion']}" for s in p.get("samples", [])]
    )


SPEC = StageSpec(
    pretrain,
    ("pretrain",),
    _pretrain_rows,
    "Pretrain on a tokenize artifact: --param tokenize_artifact=KEY.",
    PretrainConfig,
    headline=_pretrain_headline,
)
