"""Shared helpers: the benchmark corpus assembled from the shared data, timing, memory."""

from __future__ import annotations

import glob
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from common.paths import data_root


def assemble_corpus(out: Path, separator: str = "<|endoftext|>") -> list[str]:
    """>= 11 MB of text: TinyStories samples, Gutenberg, WikiText, Shakespeare; one doc per file/block."""
    docs: list[str] = []
    d = data_root()
    for pattern in ["tinystories-*/*", "nltk-gutenberg/*", "wikitext-2-tokenized/*", "tinyshakespeare/*"]:
        for f in sorted(glob.glob(str(d / pattern))):
            text = Path(f).read_bytes().decode("utf-8", errors="replace").replace("\r\n", "\n")
            docs.extend(b for b in text.split("\n\n") if b.strip())
    out.write_text(separator.join(docs), encoding="utf-8")
    return docs


def timed(fn: Callable, *args, repeat: int = 1, **kwargs) -> tuple[float, object]:
    """Median wall seconds over `repeat` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
