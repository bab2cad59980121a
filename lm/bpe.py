"""Byte-level BPE training, from scratch (CS336 assignment 1 semantics).

1. Split the corpus on special tokens (they are never merged, no merge crosses them).
2. Pretokenize each piece with the GPT-2 regex and count distinct pretokens, in parallel
   over chunks whose boundaries sit at special tokens (`lm/pretokenize.py`).
3. Merge: repeatedly take the most frequent adjacent pair within pretokens (ties: the
   lexicographically greater pair of byte strings), append it to the vocab.

The merge loop is compiled (`lm/_bpe_core.cpp`, built by `pip install -e .`), with the same
loop in Python as the fallback (`merge_pretokens_python`; identical merges, tested). It
keeps pair counts incrementally and a max-heap with lazy invalidation:
a merge touches only the words that contain the merged pair, and picking the best pair
is a heap pop instead of a scan of every pair (the scan is ~8 ms per merge at 66k
distinct pretokens, i.e. minutes for a 10k vocab). `train_bpe_reference` is the plain
version that recounts every pair each merge: the executable specification the fast
trainer is tested against.
"""

from __future__ import annotations

import heapq
import logging
import os
import resource
import time
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from lm.pretokenize import count_pretokens, pretokenize_file

log = logging.getLogger("lmforge.lm.bpe")

try:  # built by `pip install -e .` (make setup); without a C++ compiler the Python loop gives the same merges
    from lm import _bpe_core
except ImportError:
    _bpe_core = None


# --- merging ----------------------------------------------------------------------------------
class _HeapItem:
    """Max-heap entry: higher count first, then the lexicographically greater byte pair."""

    __slots__ = ("count", "pair_bytes", "pair")

    def __init__(self, count: int, pair_bytes: tuple[bytes, bytes], pair: tuple[int, int]):
        self.count, self.pair_bytes, self.pair = count, pair_bytes, pair

    def __lt__(self, other: _HeapItem) -> bool:
        if self.count != other.count:
            return self.count > other.count
        return self.pair_bytes > other.pair_bytes


def _initial_vocab(special_tokens: list[str]) -> dict[int, bytes]:
    vocab = {i: bytes([i]) for i in range(256)}
    for s in special_tokens:
        vocab[len(vocab)] = s.encode("utf-8")
    return vocab


def merge_pretokens(
    pretoken_counts: dict[bytes, int],
    vocab_size: int,
    special_tokens: list[str],
    progress: bool = True,
    compiled: bool | None = None,
    consume: bool = False,
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """The merges, by the compiled core (`lm/_bpe_core.cpp`) when it is built, else by the same loop in
    Python; `compiled` forces one (the tests run both and compare). `consume`: the compiled core
    empties `pretoken_counts` once it holds its own copy, so the merges reuse that memory (at
    100 MB of text the counts are ~170 MB of Python objects)."""
    use_core = _bpe_core is not None if compiled is None else compiled
    if not use_core:
        return merge_pretokens_python(pretoken_counts, vocab_size, special_tokens, progress)
    if _bpe_core is None:
        raise RuntimeError(
            "the compiled BPE core (lm._bpe_core) is not built: `pip install -e .` builds it (needs g++)"
        )
    vocab = _initial_vocab(special_tokens)
    n_merges = _merges_wanted(vocab, vocab_size, special_tokens)
    bar = tqdm(total=n_merges, desc="BPE merges", unit="merge", disable=not progress, mininterval=0.5)
    ids = _bpe_core.merge(
        pretoken_counts if type(pretoken_counts) in (dict, Counter) else dict(pretoken_counts),
        [vocab[i] for i in range(len(vocab))],
        n_merges,
        lambda done: bar.update(done - bar.n),
        consume,
    )
    bar.close()
    merges = []
    for a, b in ids:
        vocab[len(vocab)] = vocab[a] + vocab[b]
        merges.append((vocab[a], vocab[b]))
    return vocab, merges


def _merges_wanted(vocab: dict[int, bytes], vocab_size: int, special_tokens: list[str]) -> int:
    n_merges = vocab_size - len(vocab)
    if n_merges < 0:
        raise ValueError(f"vocab_size={vocab_size} is smaller than 256 bytes + {len(special_tokens)} special tokens")
    return n_merges


def merge_pretokens_python(
    pretoken_counts: dict[bytes, int], vocab_size: int, special_tokens: list[str], progress: bool = True
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """The merge loop in Python: the fallback, and the readable form of the compiled core."""
    vocab = _initial_vocab(special_tokens)
    n_merges = _merges_wanted(vocab, vocab_size, special_tokens)
    words: list[list[int]] = [list(tok) for tok in pretoken_counts]
    freqs: list[int] = list(pretoken_counts.values())
    pair_counts: dict[tuple[int, int], int] = {}
    pair_words: dict[tuple[int, int], set[int]] = {}
    for w, (word, freq) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] = pair_counts.get(pair, 0) + freq
            pair_words.setdefault(pair, set()).add(w)
    heap = [_HeapItem(c, (vocab[p[0]], vocab[p[1]]), p) for p, c in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[bytes, bytes]] = []
    bar = tqdm(total=n_merges, desc="BPE merges", unit="merge", disable=not progress, mininterval=0.5)
    while len(merges) < n_merges and heap:
        item = heapq.heappop(heap)
        if pair_counts.get(item.pair, 0) != item.count or item.count <= 0:
            continue  # stale entry: the pair's count changed after it was pushed
        a, b = item.pair
        new_id = len(vocab)
        vocab[new_id] = vocab[a] + vocab[b]
        merges.append((vocab[a], vocab[b]))
        changed: set[tuple[int, int]] = set()
        for w in pair_words.pop(item.pair, ()):
            word, freq = words[w], freqs[w]
            merged: list[int] = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    merged.append(new_id)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            for pair in zip(word, word[1:]):
                pair_counts[pair] -= freq
                changed.add(pair)
            for pair in zip(merged, merged[1:]):
                pair_counts[pair] = pair_counts.get(pair, 0) + freq
                changed.add(pair)
            old_pairs, new_pairs = set(zip(word, word[1:])), set(zip(merged, merged[1:]))
            for pair in old_pairs - new_pairs:
                if pair != item.pair:
                    pair_words[pair].discard(w)
            for pair in new_pairs - old_pairs:
                pair_words.setdefault(pair, set()).add(w)
            words[w] = merged
        pair_counts.pop(item.pair, None)
        changed.discard(item.pair)
        for pair in changed:
            c = pair_counts.get(pair, 0)
            if c > 0:
                heapq.heappush(heap, _HeapItem(c, (vocab[pair[0]], vocab[pair[1]]), pair))
            else:
                pair_counts.pop(pair, None)
        bar.update(1)
    bar.close()
    return vocab, merges


def train_bpe(
    input_path: str | os.PathLike,
    vocab_size: int,
    special_tokens: list[str],
    workers: int | None = None,
    progress: bool = True,
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Train a byte-level BPE on a text file: (vocab id → bytes, merges in order)."""
    vocab, merges, _ = train_bpe_with_summary(input_path, vocab_size, special_tokens, workers, progress)
    return vocab, merges


def train_bpe_with_summary(
    input_path: str | os.PathLike,
    vocab_size: int,
    special_tokens: list[str],
    workers: int | None = None,
    progress: bool = True,
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]], dict]:
    """`train_bpe`, plus what it took: distinct pretokens, merges, seconds per phase, peak RSS."""
    t0 = time.time()
    counts = pretokenize_file(Path(input_path), special_tokens, workers, progress=progress)
    t1 = time.time()
    distinct = len(counts)
    vocab, merges = merge_pretokens(counts, vocab_size, special_tokens, progress, consume=True)
    t2 = time.time()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mb_per_s = Path(input_path).stat().st_size / 1e6 / max(t1 - t0, 1e-9)
    log.info(
        "BPE: %d distinct pretokens, %d merges; pretokenize %.2fs (%.1f MB/s), merge %.2fs; peak RSS %.0f MB",
        distinct,
        len(merges),
        t1 - t0,
        mb_per_s,
        t2 - t1,
        peak_mb,
    )
    summary = {
        "distinct_pretokens": distinct,
        "merges": len(merges),
        "pretokenize_s": round(t1 - t0, 3),
        "pretokenize_mb_per_s": round(mb_per_s, 1),
        "merge_s": round(t2 - t1, 3),
        "peak_rss_mb": round(peak_mb, 1),
    }
    return vocab, merges, summary


def train_bpe_reference(
    text: str, vocab_size: int, special_tokens: list[str]
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """The specification: recount every pair, take the max, merge; no cleverness."""
    vocab = _initial_vocab(special_tokens)
    words = {tuple(bytes([c]) for c in tok): n for tok, n in count_pretokens(text, special_tokens).items()}
    merges: list[tuple[bytes, bytes]] = []
    while len(vocab) < vocab_size:
        pairs: Counter[tuple[bytes, bytes]] = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append(best)
        vocab[len(vocab)] = best[0] + best[1]
        new_words: dict[tuple[bytes, ...], int] = {}
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            new_words[tuple(out)] = new_words.get(tuple(out), 0) + n
        words = new_words
    return vocab, merges
