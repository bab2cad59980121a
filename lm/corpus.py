"""From documents to token arrays: the BPE training sample, then `train.bin` / `val.bin`.

Documents come from Parquet shards (a clean-data artifact) or any file the cleaning
readers understand. Each document is encoded and followed by `<|endoftext|>`; the split
is by a hash of the document id, so it is stable however the corpus is sharded.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from pathlib import Path

import numpy as np
from tqdm import tqdm

from filters.document import Stats
from filters.readers import read_documents
from lm.tokenizer import ENDOFTEXT, Tokenizer
from pydantic import BaseModel, ConfigDict, Field, model_validator


class TokenizeConfig(BaseModel):
    """What the tokenize stage takes (besides its input corpus)."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[str] = Field(default_factory=list, description="text/JSONL/Parquet files, if no clean-data artifact is given")
    vocab_size: int = Field(10_000, ge=257)
    special_tokens: list[str] = Field(default_factory=lambda: [ENDOFTEXT])
    train_bytes: int = Field(50_000_000, ge=1, description="BPE is trained on the first this-many bytes of the corpus")
    val_fraction: float = Field(0.01, gt=0, lt=1, description="documents to val.bin, chosen by a hash of their id")
    workers: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _check(self) -> "TokenizeConfig":
        if ENDOFTEXT not in self.special_tokens:
            raise ValueError(f"special_tokens must include {ENDOFTEXT!r}: it separates documents in the token arrays")
        if self.vocab_size < 256 + len(self.special_tokens):
            raise ValueError(f"vocab_size {self.vocab_size} leaves no room for merges (256 bytes + {len(self.special_tokens)} specials)")
        return self


def iter_texts(paths: list[Path], split_text_on_blank_lines: bool = True) -> Iterator[tuple[str, str]]:
    """(id, text) of every document in `paths`, in order (plain text: a doc per blank-line block)."""
    stats = Stats()
    for p in paths:
        for doc in read_documents(Path(p), stats, split_blank_lines=split_text_on_blank_lines):
            yield doc.id, doc.text


def write_training_sample(paths: list[Path], out: Path, byte_cap: int, separator: str = ENDOFTEXT) -> int:
    """The first `byte_cap` bytes of the corpus, documents joined by the separator."""
    written = 0
    with open(out, "w", encoding="utf-8") as f:
        for _, text in iter_texts(paths):
            if written >= byte_cap:
                break
            chunk = text + separator
            f.write(chunk)
            written += len(chunk.encode("utf-8"))
    return written


def is_validation(doc_id: str, val_fraction: float) -> bool:
    h = int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "little")
    return h / 2**64 < val_fraction


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


_worker_tok: Tokenizer | None = None


def _init_worker(tokenizer_dir: str) -> None:
    global _worker_tok
    _worker_tok = Tokenizer.from_dir(tokenizer_dir)


def _encode_batch(args: tuple[list[tuple[str, str]], float, str]) -> tuple[np.ndarray, np.ndarray, int, int]:
    batch, val_fraction, dtype = args
    tok = _worker_tok
    assert tok is not None
    eot = tok.special_ids[ENDOFTEXT]
    train: list[int] = []
    val: list[int] = []
    val_bytes = 0
    # one encode call per document: tiktoken's encode_batch adds a thread pool that costs
    # ~3× at one thread per worker process (measured in benchmarks/tokenization.py)
    for doc_id, text in batch:
        ids = tok.encode(text)
        if is_validation(doc_id, val_fraction):
            val.extend(ids)
            val.append(eot)
            val_bytes += len(text.encode("utf-8"))
        else:
            train.extend(ids)
            train.append(eot)
    return np.array(train, dtype=dtype), np.array(val, dtype=dtype), len(batch), val_bytes


def _batches(it: Iterator[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    while batch := list(islice(it, size)):
        yield batch


def encode_corpus(
    paths: list[Path], tokenizer_dir: Path, out_dir: Path, val_fraction: float = 0.01, workers: int | None = None, batch_docs: int = 512
) -> dict:
    """Encode every document into `train.bin` / `val.bin` (np.memmap-readable) + `meta.json`."""
    tok = Tokenizer.from_dir(tokenizer_dir)
    dtype = token_dtype(tok.vocab_size)
    workers = workers or os.cpu_count() or 1
    counts = {"train": 0, "val": 0}
    docs = val_bytes = 0
    with open(out_dir / "train.bin", "wb") as ftrain, open(out_dir / "val.bin", "wb") as fval, ProcessPoolExecutor(
        workers, initializer=_init_worker, initargs=(str(tokenizer_dir),)
    ) as pool, tqdm(desc="encode", unit="doc", mininterval=1) as bar:
        jobs = ((b, val_fraction, dtype.str) for b in _batches(iter_texts(paths), batch_docs))
        # map keeps document order; chunksize 1 keeps memory to a few batches in flight
        for train, val, n, vb in pool.map(_encode_batch, jobs):
            train.tofile(ftrain)
            val.tofile(fval)
            counts["train"] += len(train)
            counts["val"] += len(val)
            docs += n
            val_bytes += vb
            bar.update(n)
    meta = {
        "dtype": dtype.name,
        "vocab_size": tok.vocab_size,
        "special_tokens": tok.special_ids,
        "eot_id": tok.special_ids[ENDOFTEXT],
        "documents": docs,
        "train_tokens": counts["train"],
        "val_tokens": counts["val"],
        "val_fraction": val_fraction,
        # bytes of held-out text per token (the EOT tokens excluded): the compression rate
        "val_bytes_per_token": round(val_bytes / max(counts["val"] - _count_eot(out_dir / "val.bin", dtype, tok), 1), 4),
    }
    if counts["val"] == 0 or counts["train"] == 0:
        raise ValueError(
            f"{docs} documents gave {counts['train']} train and {counts['val']} val tokens: "
            "raise val_fraction (or lower it) or give the corpus more documents"
        )
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def _count_eot(path: Path, dtype: np.dtype, tok: Tokenizer) -> int:
    if path.stat().st_size == 0:
        return 0
    return int((np.memmap(path, dtype=dtype, mode="r") == tok.special_ids[ENDOFTEXT]).sum())
