"""Pipeline steps: a step maps a stream of documents to a stream of documents.

A `Filter` writes only `filter(doc) -> True | (False, reason)`; the base class counts
docs/bytes in and out and every drop reason, so nothing vanishes uncounted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from filters.document import Document, Stats


class Step:
    name: str = "step"

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


def run_steps(docs: Iterable[Document], steps: list[Step], stats: Stats) -> Iterator[Document]:
    for step in steps:
        docs = step.run(docs, stats)
    return iter(docs)
