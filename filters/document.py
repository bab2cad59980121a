"""The one small type that flows through every cleaning step."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

NOT_COUNTED = "—"


@dataclass(slots=True)
class Document:
    text: str
    id: str
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)


class Stats:
    """Per-step counters: docs/bytes in and out, and drop reasons.

    Plain dicts of Counters so per-file stats from worker processes can be pickled back
    and merged.
    """

    def __init__(self) -> None:
        self.steps: dict[str, Counter] = defaultdict(Counter)

    def add(self, step: str, **counts: int) -> None:
        self.steps[step].update(counts)

    def merge(self, other: Stats) -> Stats:
        for step, counter in other.steps.items():
            self.steps[step].update(counter)
        return self

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {step: dict(sorted(c.items())) for step, c in self.steps.items()}

    @classmethod
    def from_dict(cls, d: dict[str, dict[str, int]]) -> Stats:
        s = cls()
        for step, counts in d.items():
            s.steps[step].update(counts)
        return s

    def table_rows(self) -> list[dict[str, Any]]:
        """One row per step: in, out, dropped, and the drop reasons. A count a step does not keep
        (the reader has no bytes in; dedup steps count documents, not bytes) shows as "—", never as 0."""
        rows = []
        for step, c in self.steps.items():
            reasons = {k.removeprefix("dropped_"): v for k, v in c.items() if k.startswith("dropped_")}
            other = {k: v for k, v in c.items() if not k.startswith(("dropped_", "docs_", "bytes_"))}
            rows.append(
                {
                    "step": step,
                    **{k: c[k] if k in c else NOT_COUNTED for k in ("docs_in", "docs_out", "bytes_in", "bytes_out")},
                    "dropped": ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())),
                    "other": ", ".join(f"{k}={v}" for k, v in sorted(other.items())),
                }
            )
        return rows
