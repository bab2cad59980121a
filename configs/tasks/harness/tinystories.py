"""Documents of lmforge's own lm-eval tasks, built from held-out TinyStories text (the validation split's
sample in the data root, which no lmforge recipe trains on).

lm-eval calls these through `custom_dataset: !function tinystories.NAME` with the task's `dataset_kwargs`;
the documents are a pure function of the text and the seed, so every run scores the same documents.
"""

from __future__ import annotations

import random
import re

import datasets

from common.paths import data_root

SENTENCE_END = re.compile(r"[.!?][\"”]?\s+")


def passages(source: str, min_words: int) -> list[str]:
    """The blank-line blocks of a text file (TinyStories' paragraphs), whitespace collapsed, in file order."""
    text = (data_root() / source).read_text(encoding="utf-8")
    blocks = (" ".join(b.split()) for b in re.split(r"\n\s*\n", text))
    return [b for b in blocks if len(b.split()) >= min_words]


def sentences(passage: str) -> list[str]:
    """A passage cut after each . ! or ? (with its closing quote) that is outside a quotation."""
    out, start = [], 0
    for m in SENTENCE_END.finditer(passage):
        if passage.count('"', 0, m.end()) % 2 == 0:
            out.append(passage[start : m.end()].strip())
            start = m.end()
    return out + [passage[start:].strip()] if passage[start:].strip() else out


def cloze(source: str, n_docs: int, min_words: int = 30, **_metadata) -> datasets.DatasetDict:
    """LAMBADA-style: a passage without its last word, and that word (the passage's final punctuation dropped)."""
    docs = []
    for p in passages(source, min_words):
        words = p.rstrip(".!?\"' ").split(" ")
        if len(words) >= min_words and re.fullmatch(r"[A-Za-z]+", words[-1]):
            docs.append({"context": " ".join(words[:-1]), "word": words[-1]})
        if len(docs) == n_docs:
            break
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def endings(source: str, n_docs: int, seed: int = 1234, min_sentences: int = 3, **_metadata) -> datasets.DatasetDict:
    """HellaSwag-style: a passage's first sentences, and four endings: its own last sentence and the last
    sentences of three other passages, in a seeded order (`label`: where the true one is)."""
    split = [s for s in map(sentences, passages(source, 20)) if len(s) >= min_sentences]
    rng = random.Random(seed)
    last = [s[-1] for s in split]
    docs = []
    for i, story in enumerate(split[:n_docs]):
        others = rng.sample([j for j in range(len(split)) if last[j] != last[i]], 3)
        choices = [last[i]] + [last[j] for j in others]
        rng.shuffle(choices)
        docs.append({"context": " ".join(story[:-1]), "endings": choices, "label": choices.index(last[i])})
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})
