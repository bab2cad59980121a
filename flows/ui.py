"""What a stage shows in the Prefect UI: markdown artifacts with the stage's figures embedded
(the UI shows a markdown artifact, not a file on the worker's disk)."""

from __future__ import annotations

import base64
from pathlib import Path

from prefect.artifacts import create_markdown_artifact


def figure_markdown(png: Path, alt: str | None = None) -> str:
    """A PNG as an inline markdown image; an empty string when the figure was not written."""
    if not png.is_file():
        return ""
    return f"![{alt or png.stem}](data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()})"


def publish_figures(key: str | None, description: str, text: str, figures: list[Path]) -> None:
    """A markdown artifact: `text`, then each figure. `key=None` attaches it to this run only
    (a sweep's points: one key for all of them would keep only the last point's)."""
    parts = [text] + [figure_markdown(f) for f in figures]
    create_markdown_artifact(key=key, markdown="\n\n".join(p for p in parts if p), description=description)
