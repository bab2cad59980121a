"""The stage registry: the one place that knows each stage.

The CLI, `lmforge serve` (deployments), the pipeline's summary and the cache keys all read
it. Adding a stage is an entry here plus its flow module.

Each entry names the flow module (the root of the stage's code fingerprint, so the key
covers exactly the code the stage runs), the flow function, the config sections a
`-c FILE` is read from (a pipeline file's own section first, else the whole file), and
how to turn a finished artifact into summary rows. Plain data and small functions: no
flow module is imported until a stage is used.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl.report import evaluation_rows


def _manifest_summary(path: Path) -> dict[str, Any]:
    return json.loads((path / "manifest.json").read_text())["summary"]


def _clean_rows(path: Path) -> list[dict]:
    from filters.document import Stats

    return Stats.from_dict(json.loads((path / "stats.json").read_text())).table_rows()


def _quality_model_rows(path: Path) -> list[dict]:
    return [{k: (f"{v:.3f}" if isinstance(v, float) else str(v)) for k, v in _manifest_summary(path).items()}]


def _quality_model_defaults() -> dict[str, Any]:
    return {"config": _demo_config()["quality_model"]}


def _tokenize_rows(path: Path) -> list[dict]:
    meta = json.loads((path / "meta.json").read_text())
    return [{k: str(v) for k, v in meta.items() if k not in ("special_tokens", "bpe")}]


def _pretrain_rows(path: Path) -> list[dict]:
    summary = _manifest_summary(path)
    return [{k: (f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in summary.items() if k != "samples"}]


def _sweep_rows(path: Path) -> list[dict]:
    return [{"law": line} for line in _manifest_summary(path)["laws"]]


def _quality_model_headline(path: Path) -> list[str]:
    q = json.loads((path / "metrics.json").read_text())["heldout"]
    return [
        f"held-out precision {q['precision']:.3f}, recall {q['recall']:.3f}, F1 {q['f1']:.3f} "
        f"({q['positives']} reference / {q['negatives']} crawl examples)"
    ]


def _tokenize_headline(path: Path) -> list[str]:
    t = json.loads((path / "meta.json").read_text())
    return [
        f"vocab {t['vocab_size']}, {t['train_tokens']:,} train / {t['val_tokens']:,} val tokens, "
        f"{t['val_bytes_per_token']} bytes/token on held-out text"
    ]


def _pretrain_headline(path: Path) -> list[str]:
    p = _manifest_summary(path)
    tasks = [f"{k[len('eval/') :]} {v:.3f}" for k, v in p.items() if k.startswith("eval/")]
    return (
        [f"{p['params']:,} params, {p['tokens']:,} tokens, validation loss {p['final_val_loss']:.3f}"]
        + ([f"held-out tasks (lm-eval): {', '.join(tasks)}"] if tasks else [])
        + [f"  {s['prompt']}{s['completion']}" for s in p.get("samples", [])]
    )


def _sweep_headline(path: Path) -> list[str]:
    return _manifest_summary(path)["laws"] + [f"plots: {path / 'isoflop.png'}, {path / 'parametric.png'}"]


def _lift_text(lift: dict | None) -> str:
    """` (+0.050, 95% interval -0.030 … +0.130: within noise)`, or nothing for an older artifact."""
    if not lift:
        return ""
    lo, hi = lift["ci95"]
    noise = ": within noise" if lift["within_noise"] else ""
    return f" ({lift['difference']:+.3f}, 95% interval {lo:+.3f} … {hi:+.3f}{noise})"


def _grpo_headline(path: Path) -> list[str]:
    g = json.loads((path / "eval.json").read_text())
    before, after = g["before"], g["after"]
    lines = [
        f"{g['task']}, {mode}, rollouts by {g['engine']}: held-out accuracy {before[mode]['accuracy']:.3f} → "
        f"{after[mode]['accuracy']:.3f}{_lift_text(g.get('lift', {}).get(mode))}, mean reward "
        f"{before[mode]['mean_reward']:.3f} → {after[mode]['mean_reward']:.3f}"
        for mode in ("greedy", "sampled")
    ]
    widest = max((k for k in after["sampled"] if k.startswith("pass@")), key=lambda k: int(k[5:]), default=None)
    if widest:
        lines.append(f"{widest}: {before['sampled'][widest]:.3f} → {after['sampled'][widest]:.3f}")
    lines += _grpo_training_lines(path / "metrics.jsonl")
    return lines + ([f"WARNING: {g['warning']}"] if "warning" in g else [])


def _grpo_training_lines(metrics: Path) -> list[str]:
    """Why the lift is what it is: the training reward's trend, the share of groups that taught
    nothing (every completion scored the same: no advantage), and the KL to the reference."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.is_file() else []
    rows = [r for r in rows if "reward" in r]
    if not rows:
        return []
    k = max(1, len(rows) // 10)

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    start, end = mean([r["reward"] for r in rows[:k]]), mean([r["reward"] for r in rows[-k:]])
    no_signal = mean([r.get("frac_reward_zero_std", 0.0) for r in rows])
    kl = f", KL to the reference {rows[-1]['kl']:.4f} at the end" if "kl" in rows[-1] else ""
    return [
        f"training: reward {start:.3f} → {end:.3f} (mean of the first / last {k} logged steps); "
        f"{no_signal:.0%} of groups had no reward variance (no learning signal){kl}"
    ]


def _grpo_rows(path: Path) -> list[dict]:
    return evaluation_rows(json.loads((path / "eval.json").read_text()), ("before", "after"), _cell)


def _sft_headline(path: Path) -> list[str]:
    e = json.loads((path / "eval.json").read_text())
    g, smp = e["after"]["greedy"], e["after"]["sampled"]
    passes = ", ".join(f"{k} {v:.3f}" for k, v in smp.items() if k.startswith("pass@"))
    return [
        f"{e['task']}: held-out loss {e['heldout_loss']:.3f}, greedy accuracy {g['accuracy']:.3f}"
        + (f", {passes}" if passes else "")
    ]


def _sft_rows(path: Path) -> list[dict]:
    return evaluation_rows(json.loads((path / "eval.json").read_text()), ("after",), _cell)


def _cell(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _evaluate_rows(path: Path) -> list[dict]:
    return [{k: str(v) for k, v in row.items()} for row in _manifest_summary(path)["rows"]]


def _evaluate_headline(path: Path) -> list[str]:
    summary = _manifest_summary(path)
    if summary["rows"] and "metric" in summary["rows"][0]:  # lm-eval's metrics, one row each
        lines = [
            f"{row['checkpoint']}: {row['task']} {row['metric']}"
            + ("" if row["filter"] == "none" else f" ({row['filter']})")
            + f" {row['value']}"
            for row in summary["rows"]
        ]
        return lines + [f"plot: {path / 'comparison.png'}"]
    return [
        f"{summary['task']}: "
        + ", ".join(
            f"{k} {v}" for k, v in row.items() if k in ("checkpoint", "greedy accuracy") or k.startswith("pass@")
        )
        for row in summary["rows"]
    ] + [f"plot: {path / 'comparison.png'}"]


# Flow parameters that take artifact keys, and the stages whose artifacts each accepts (the CLI,
# `lmforge run`, the pipeline and deployments' flows all check keys against this); `checkpoint`
# also takes a Hugging Face model folder (flows/checkpoints.py).
KEY_PARAMETERS: dict[str, tuple[str, ...]] = {
    "clean_artifact": ("clean-data",),
    "tokenize_artifact": ("tokenize",),
    "checkpoint": ("pretrain", "sft", "grpo"),
    "checkpoints": ("pretrain", "sft", "grpo"),
}


@dataclass(frozen=True)
class StageSpec:
    name: str  # the artifact folder, the Prefect flow name, the CLI subcommand
    module: str  # the flow module: root of the code fingerprint in the cache key
    flow: str  # the flow function in `module`
    sections: tuple[str, ...]  # where `-c FILE` finds this stage's settings (dotted paths, first present wins)
    summary_rows: Callable[[Path], list[dict]]  # an artifact dir → rows of its summary table
    description: str = ""
    default_parameters: Callable[[], dict[str, Any]] = field(default=dict)  # the `default` deployment's parameters
    headline: Callable[[Path], list[str]] | None = None  # its lines in the pipeline's summary; None: the summary table
    settings: str = ""  # "module:Class", its settings model (the docs' reference is generated from it)

    def load_flow(self):
        return getattr(importlib.import_module(self.module), self.flow)

    def settings_model(self) -> type:
        module, name = self.settings.split(":")
        return getattr(importlib.import_module(module), name)


def _clean_defaults() -> dict[str, Any]:
    from common.paths import data_root

    return {"config": {"inputs": [str(data_root() / "cc-en-jsonl"), str(data_root() / "web-warc-samples")]}}


def _tokenize_defaults() -> dict[str, Any]:
    from common.paths import data_root

    return {"config": {"inputs": [str(data_root() / "tinystories-train-sample")], "vocab_size": 4096}}


def _demo_config() -> dict[str, Any]:
    from common.configfile import read_yaml
    from common.paths import REPO_ROOT

    return read_yaml(REPO_ROOT / "configs" / "pipeline-demo.yaml")


STAGES: dict[str, StageSpec] = {
    s.name: s
    for s in [
        StageSpec(
            "clean-data",
            "flows.clean_data",
            "clean_data",
            ("clean_data",),
            _clean_rows,
            "Clean the sample web data (override config.inputs to clean your own).",
            _clean_defaults,
            settings="filters.config:CleanConfig",
        ),
        StageSpec(
            "quality-model",
            "flows.quality_model",
            "quality_model",
            ("quality_model",),
            _quality_model_rows,
            "Train a fastText quality classifier (reference text vs. crawl) for clean-data's classifier.",
            _quality_model_defaults,
            _quality_model_headline,
            settings="filters.quality_classifier:QualityModelConfig",
        ),
        StageSpec(
            "tokenize",
            "flows.tokenization",
            "tokenize",
            ("tokenize",),
            _tokenize_rows,
            "Train a BPE tokenizer (pass clean_artifact=KEY to tokenize a clean-data artifact).",
            _tokenize_defaults,
            _tokenize_headline,
            settings="lm.corpus:TokenizeConfig",
        ),
        StageSpec(
            "pretrain",
            "flows.pretrain",
            "pretrain",
            ("pretrain",),
            _pretrain_rows,
            "Pretrain on a tokenize artifact: --param tokenize_artifact=KEY.",
            headline=_pretrain_headline,
            settings="lm.train:PretrainConfig",
        ),
        # a pipeline file's `scaling_sweep:` section holds the sweep under `sweep:`
        StageSpec(
            "scaling-sweep",
            "flows.scaling_sweep",
            "scaling_sweep",
            ("scaling_sweep.sweep", "scaling_sweep"),
            _sweep_rows,
            "Scaling sweep on a tokenize artifact: --param tokenize_artifact=KEY.",
            lambda: {"config": _demo_config()["scaling_sweep"]["sweep"]},
            _sweep_headline,
            settings="scaling.sweep:SweepConfig",
        ),
        # a pipeline file's `grpo:` section holds the settings under `settings:`
        StageSpec(
            "grpo",
            "flows.grpo",
            "grpo",
            ("post_training.grpo", "grpo.settings", "grpo"),
            _grpo_rows,
            "GRPO on a checkpoint: --param checkpoint=KEY_OR_HF_DIR.",
            headline=_grpo_headline,
            settings="rl.grpo:GRPOSettings",
        ),
        StageSpec(
            "sft",
            "flows.sft",
            "sft",
            ("post_training.sft", "sft"),
            _sft_rows,
            "Supervised fine-tuning on a task: --param checkpoint=KEY_OR_HF_DIR.",
            headline=_sft_headline,
            settings="rl.sft:SFTSettings",
        ),
        StageSpec(
            "evaluate",
            "flows.evaluate",
            "evaluate",
            ("post_training.evaluate", "evaluate"),
            _evaluate_rows,
            "Evaluate checkpoints on a task: --param checkpoints='[KEY, ...]'.",
            headline=_evaluate_headline,
            settings="rl.evaluate:EvalConfig",
        ),
        StageSpec(
            "pipeline",
            "flows.pipeline",
            "pipeline",
            (),
            lambda path: [],
            "The whole demo pipeline.",
            lambda: {"config": _demo_config()},
        ),
    ]
}
