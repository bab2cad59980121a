"""The one figure helper: headless matplotlib, a figure that is saved and always closed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
