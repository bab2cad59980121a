"""Post-training outputs a person reads: loss and reward curves, checkpoint comparisons, the
tuned model in lmforge's format."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def plot_metric_curve(metrics_path: Path, out: Path, key: str, ylabel: str, title: str) -> None:
    """One logged metric of `metrics.jsonl` against the step (an empty frame when nothing was logged)."""
    from common.plotting import figure

    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line] if metrics_path.exists() else []
    rows = [r for r in rows if key in r]
    with figure(out) as (fig, ax):
        if rows:
            ax.plot([r["step"] for r in rows], [r[key] for r in rows])
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)


def plot_reward_curve(metrics_path: Path, out: Path, task: str) -> None:
    plot_metric_curve(metrics_path, out, "reward", "mean reward of the rollouts, higher is better", f"GRPO on {task}")


def evaluation_rows(result: dict, moments: tuple[str, ...], fmt: Callable[[Any], Any]) -> list[dict]:
    """One row per (moment, decoding) of an sft or grpo result (`after`, or `before` and `after`; greedy and
    sampled): its scalar metrics, each formatted by `fmt` (lists and tables stay in eval.json)."""
    return [
        {"eval": f"{when} ({mode})", **{k: fmt(v) for k, v in m.items() if not isinstance(v, list | dict)}}
        for when in moments
        for mode, m in result[when].items()
    ]


def comparison_rows(results: list[dict]) -> list[dict]:
    """One table row per evaluated checkpoint: greedy accuracy, pass@k, rewards, format rate, length."""
    rows = []
    for r in results:
        g, smp = r["greedy"], r["sampled"]
        rows.append(
            {
                "checkpoint": r["name"],
                "greedy accuracy": round(g["accuracy"], 4),
                **{k: round(v, 4) for k, v in smp.items() if k.startswith("pass@")},
                "mean reward": round(g["mean_reward"], 4),
                **{k: round(v, 4) for k, v in g.items() if k.startswith("reward/")},
                "format rate": round(g["format_rate"], 4),
                "completion tokens": round(g["mean_completion_tokens"], 1),
            }
        )
    return rows


def plot_checkpoint_comparison(results: list[dict], out: Path, task: str) -> None:
    """Greedy accuracy and pass@k per checkpoint, side by side."""
    import numpy as np

    from common.plotting import figure

    metrics = ["accuracy"] + sorted(
        {k for r in results for k in r["sampled"] if k.startswith("pass@")}, key=lambda k: int(k[5:])
    )
    x = np.arange(len(results))
    width = 0.8 / len(metrics)
    with figure(out) as (fig, ax):
        for i, m in enumerate(metrics):
            values = [r["greedy"]["accuracy"] if m == "accuracy" else r["sampled"].get(m, 0.0) for r in results]
            ax.bar(x + i * width, values, width, label="greedy accuracy" if m == "accuracy" else f"{m} (T=1)")
        ax.set_xticks(x + width * (len(metrics) - 1) / 2, [r["name"] for r in results], rotation=15)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"held-out {task}, higher is better")
        ax.set_title(f"{task}: checkpoints compared")
        ax.legend()
        ax.grid(alpha=0.3, axis="y")


def harness_rows(results: list[dict]) -> list[dict]:
    """One table row per checkpoint × lm-eval task × metric × filter, as lm-eval prints its table."""
    from lm.harness import metric_rows

    return [
        {
            "checkpoint": r["name"],
            **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()},
        }
        for r in results
        for row in metric_rows(r)
    ]


def plot_harness_comparison(results: list[dict], out: Path, title: str) -> None:
    """Each lm-eval score bounded to [0, 1] (accuracies, exact match), checkpoints side by side;
    unbounded ones (perplexity) are in the table."""
    import numpy as np

    from common.plotting import figure

    rows = harness_rows(results)
    bars = sorted(
        {(r["task"], r["metric"], r["filter"]) for r in rows if isinstance(r["value"], float) and 0 <= r["value"] <= 1}
    )
    value = {(r["checkpoint"], r["task"], r["metric"], r["filter"]): r["value"] for r in rows}
    x = np.arange(len(bars))
    width = 0.8 / max(len(results), 1)
    with figure(out, figsize=(max(7, 1.2 * len(bars)), 4.5)) as (fig, ax):
        for i, r in enumerate(results):
            ax.bar(x + i * width, [value.get((r["name"], *b), 0.0) for b in bars], width, label=r["name"])
        labels = [f"{t}\n{m}" + ("" if f == "none" else f" ({f})") for t, m, f in bars]
        ax.set_xticks(x + width * (len(results) - 1) / 2, labels, rotation=15, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("score (lm-evaluation-harness), higher is better")
        ax.set_title(title)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")


def as_text(value: Any) -> str:
    """A float to 3 decimals for a summary table printed on a terminal; anything else as it is."""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def rounded(value: Any) -> Any:
    """A float to 4 decimals for a table artifact; anything else as it is."""
    return round(value, 4) if isinstance(value, float) else value
