"""Pipeline steps: a step maps a stream of documents to a stream of documents.

A `Filter` writes only `filter(doc) -> True | (False, reason)`; the base class counts
docs/bytes in and out and every drop reason, so nothing vanishes uncounted, and hands
each dropped document to the `rejects` sink when there is one (filters/rejects.py), so a
user can read what a rule threw away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from pydantic import BaseModel, ConfigDict

from filters.document import Document, Stats


class StrictConfig(BaseModel):
    """Every step's config: unknown keys are errors (a misspelt setting never passes silently)."""

    model_config = ConfigDict(extra="forbid")


# (document, rule, reason) → None: where dropped documents go for inspection
RejectSink = Callable[[Document, str, str], None]


class Step:
    name: str = "step"
    rejects: RejectSink | None = None

    def run(self, docs: Iterable[Document], stats: Stats) -> Iterator[Document]:
        raise NotImplementedError


class Filter(Step):
    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        raise NotImplementedError

    def run(self, docs: Iterable[Document], stats: Stats) -> Iterator[Document]:
        for doc in docs:
            n = len(doc.text.encode("utf-8", "surrogatepass"))
            stats.add(self.name, docs_in=1, bytes_in=n)
            verdict = self.filter(doc)
            if verdict is True:
                stats.add(self.name, docs_out=1, bytes_out=n)
                yield doc
            else:
                reason = verdict[1] if isinstance(verdict, tuple) else "rejected"
                stats.add(self.name, **{f"dropped_{reason}": 1})
                if self.rejects is not None:
                    self.rejects(doc, self.name, reason)


def run_steps(
    docs: Iterable[Document], steps: list[Step], stats: Stats, rejects: RejectSink | None = None
) -> Iterator[Document]:
    for step in steps:
        step.rejects = rejects
        docs = step.run(docs, stats)
    return iter(docs)
