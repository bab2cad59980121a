"""The one figure helper: headless matplotlib, a figure that is saved and always closed; and the
quality classifier's score histogram (a figure of the filters layer, drawn here so that
`filters/` imports nothing above it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display on servers and workers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def figure(
    *paths: Path, ncols: int = 1, figsize: tuple[float, float] = (7, 4.5), dpi: int = 120, footer: list[str] = ()
) -> Iterator[tuple]:  # type: ignore[assignment]
    """`with figure(path) as (fig, ax):` draw; on leaving, the figure is laid out, written
    to every path (the format from the suffix) and closed, also when drawing failed.
    `footer` lines (warnings) go under the axes, in red."""
    plt = pyplot()
    fig, ax = plt.subplots(1, ncols, figsize=figsize)
    try:
        yield fig, ax
        if footer:
            fig.text(0.01, 0.01, "\n".join(footer), ha="left", va="bottom", color="C3", fontsize=8)
        fig.tight_layout(rect=(0, 0.035 * len(footer) + (0.02 if footer else 0), 1, 1))
        for path in paths:
            fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)


def plot_score_histogram(metrics: dict, path: Path) -> None:
    """Held-out score distributions of both classes (how separable they are)."""
    hist, held = metrics["score_histogram"], metrics["heldout"]
    edges = np.asarray(hist["edges"])
    width = np.diff(edges)
    with figure(path) as (fig, ax):
        ax.bar(
            edges[:-1],
            hist["positives"],
            width=width,
            align="edge",
            alpha=0.6,
            label=f"reference quality ({held['positives']})",
        )
        ax.bar(
            edges[:-1], hist["negatives"], width=width, align="edge", alpha=0.6, label=f"crawl ({held['negatives']})"
        )
        ax.set_xlabel("P(reference quality)")
        ax.set_ylabel("held-out examples")
        ax.set_title(
            f"quality classifier, held out: precision {held['precision']:.3f}, recall {held['recall']:.3f}, F1 "
            f"{held['f1']:.3f}"
        )
        ax.legend()
