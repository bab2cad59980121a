"""64-bit hashes of a document's word n-gram shingles (XXH64), without a Python call per shingle.

The MinHash family `xxh64` (filters/partitioned_dedup.py) hashes each shingle of the
normalised text once: compiled (`filters/_shingle_hash.cpp`, built by `pip install -e .`)
one call per document, else the `xxhash` package one call per shingle, giving the same
values (tests compare them). The shingles are those of `filters.dedup.shingles`.
"""

from __future__ import annotations

import numpy as np
import xxhash

from filters.dedup import normalize_bytes

try:
    from filters import _shingle_hash
except ImportError:  # no C++ compiler at install time: the same hashes, slower
    _shingle_hash = None


def compiled_signatures(texts: list[str], n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """(docs, permutations) uint32 MinHash signatures over the xxh64 shingle hashes' low 32
    bits, a·h + b mod 2^32 (a, b uint32), one compiled call a document; None without the
    compiled hasher (the caller then permutes `shingle_hashes` with numpy, same values)."""
    if _shingle_hash is None:
        return None
    a_bytes, b_bytes = a.astype("<u4").tobytes(), b.astype("<u4").tobytes()
    sigs = b"".join(_shingle_hash.minhash(normalize_bytes(text), n, a_bytes, b_bytes) for text in texts)
    return np.frombuffer(sigs, dtype="<u4").reshape(len(texts), len(a)).copy()


def shingle_hashes(text: str, n: int, compiled: bool | None = None) -> np.ndarray:
    """uint64 XXH64 of each word n-gram of the normalised text, in order (repeats included: a
    minimum over them equals the minimum over the set); one hash of the whole text if it has
    n words or fewer. `compiled` forces one implementation (tests)."""
    data = normalize_bytes(text)
    if compiled if compiled is not None else _shingle_hash is not None:
        if _shingle_hash is None:
            raise RuntimeError("filters._shingle_hash is not built: `pip install -e .` builds it (needs g++)")
        return np.frombuffer(_shingle_hash.shingle_hashes(data, n), dtype="<u8")
    words = data.split(b" ")
    if len(words) <= n:
        return np.array([xxhash.xxh64_intdigest(data)], dtype=np.uint64)
    return np.array(
        [xxhash.xxh64_intdigest(b" ".join(words[i : i + n])) for i in range(len(words) - n + 1)], dtype=np.uint64
    )
