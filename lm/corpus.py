"""From documents to token arrays: the BPE training sample, then `train.bin` / `val.bin`.

Documents come from Parquet shards (a clean-data artifact) or any file the cleaning
readers understand. Each document is encoded and followed by `<|endoftext|>`; the split
is by a hash of the document id, so it is stable however the corpus is sharded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm import tqdm

from filters.document import Stats
from filters.partitions import group_by_bytes, input_bytes
from filters.readers import read_documents
from lm.tokenizer import ENDOFTEXT, Tokenizer


class TokenizeConfig(BaseModel):
    """What the tokenize stage takes (besides its input corpus)."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[str] = Field(
        default_factory=list, description="text/JSONL/Parquet files, if no clean-data artifact is given"
    )
    vocab_size: int = Field(10_000, ge=257)
    special_tokens: list[str] = Field(default_factory=lambda: [ENDOFTEXT])
    train_bytes: int = Field(50_000_000, ge=1, description="BPE is trained on the first this-many bytes of the corpus")
    val_fraction: float = Field(0.01, gt=0, lt=1, description="documents to val.bin, chosen by a hash of their id")
    workers: int = Field(2, ge=1, json_schema_extra={"cache_key": False})  # the output does not depend on it

    @model_validator(mode="after")
    def _check(self) -> TokenizeConfig:
        if ENDOFTEXT not in self.special_tokens:
            raise ValueError(f"special_tokens must include {ENDOFTEXT!r}: it separates documents in the token arrays")
        if self.vocab_size < 256 + len(self.special_tokens):
            raise ValueError(
                f"vocab_size {self.vocab_size} leaves no room for merges (256 bytes + "
                f"{len(self.special_tokens)} specials)"
            )
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


def split_hash(doc_id: str) -> float:
    """A document's place in [0, 1): below val_fraction it is held out."""
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "little") / 2**64


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


@dataclass(frozen=True)
class EncodePart:
    """One unit of encoding work: every `num_parts`-th batch of the documents of a group of
    consecutive files, written to `<out_prefix>.train.bin` / `.val.bin`.

    Grouping small files keeps a corpus of thousands of files to a few tasks; splitting a
    group by batch index lets two workers share one big file (each reads it, which is cheap
    next to encoding). Parts are concatenated in (group, part) order.
    """

    paths: tuple[Path, ...]
    part: int
    num_parts: int
    out_prefix: Path
    batch_docs: int = 512

    @property
    def name(self) -> str:
        """Its files, for progress lines: `a.txt`, or `a.txt … z.txt (1,000 files)`."""
        first = self.paths[0].name
        return first if len(self.paths) == 1 else f"{first} … {self.paths[-1].name} ({len(self.paths):,} files)"


# the most input bytes one encode task takes (small files are grouped up to it)
PART_BYTES = 64 * 1024 * 1024


def plan_parts(paths: list[Path], workers: int, out_dir: Path) -> list[EncodePart]:
    """Consecutive files grouped into at least `workers` groups of at most PART_BYTES (each file
    whole); when there are fewer files than workers, each file split by batch index."""
    paths = [Path(p) for p in paths]
    total = sum(input_bytes(p) for p in paths)
    groups = group_by_bytes(paths, max(1, min(PART_BYTES, total // max(workers, 1))))
    num_parts = max(1, workers // max(len(groups), 1))
    units = [(tuple(g), j) for g in groups for j in range(num_parts)]
    return [EncodePart(g, j, num_parts, out_dir / f"_part-{i:05d}") for i, (g, j) in enumerate(units)]


def encode_part(part: EncodePart, tokenizer_dir: Path, val_fraction: float) -> dict:
    """Encode one part into its own train/val token files; returns its counts."""
    tok = Tokenizer.from_dir(tokenizer_dir)
    dtype = token_dtype(tok.vocab_size)
    eot = tok.special_ids[ENDOFTEXT]
    counts = {"documents": 0, "text_bytes": 0, "train_tokens": 0, "val_tokens": 0, "val_documents": 0, "val_bytes": 0}
    # the train document with the lowest split hash: held out after all if the corpus has no other
    lowest = {"hash": 2.0, "offset": 0, "tokens": 0, "bytes": 0}
    batches = islice(_batches(iter_texts(list(part.paths)), part.batch_docs), part.part, None, part.num_parts)
    with open(f"{part.out_prefix}.train.bin", "wb") as ftrain, open(f"{part.out_prefix}.val.bin", "wb") as fval:
        for batch in batches:
            train: list[int] = []
            val: list[int] = []
            # one encode call per document: tiktoken's encode_batch adds a thread pool that costs
            # ~3× at one thread per worker process (measured in benchmarks/tokenization.py)
            for doc_id, text in batch:
                ids = tok.encode(text)
                n_bytes = len(text.encode("utf-8"))
                counts["text_bytes"] += n_bytes
                if (h := split_hash(doc_id)) < val_fraction:
                    val.extend(ids)
                    val.append(eot)
                    counts["val_documents"] += 1
                    counts["val_bytes"] += n_bytes
                else:
                    if h < lowest["hash"]:
                        lowest = {
                            "hash": h,
                            "offset": counts["train_tokens"] + len(train),
                            "tokens": len(ids) + 1,
                            "bytes": n_bytes,
                        }
                    train.extend(ids)
                    train.append(eot)
            np.array(train, dtype=dtype).tofile(ftrain)
            np.array(val, dtype=dtype).tofile(fval)
            counts["documents"] += len(batch)
            counts["train_tokens"] += len(train)
            counts["val_tokens"] += len(val)
    return {**counts, "lowest_train_doc": lowest}


COPY_CHUNK = 16 << 20


def _copy_bytes(src, dst, n: int) -> None:
    """Copy exactly `n` bytes, a chunk at a time (memory stays flat however large a part is)."""
    while n > 0:
        block = src.read(min(n, COPY_CHUNK))
        if not block:
            raise ValueError(f"{getattr(src, 'name', 'a token part')} ended {n} bytes early")
        dst.write(block)
        n -= len(block)


def _batches(it: Iterator[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    while batch := list(islice(it, size)):
        yield batch


def merge_parts(
    parts: list[EncodePart], part_counts: list[dict], tokenizer_dir: Path, out_dir: Path, val_fraction: float
) -> dict:
    """Concatenate the parts, in order, into `train.bin` / `val.bin` and write `meta.json`."""
    tok = Tokenizer.from_dir(tokenizer_dir)
    total = (
        {k: sum(c[k] for c in part_counts) for k in part_counts[0] if k != "lowest_train_doc"} if part_counts else {}
    )
    # a small corpus whose hashes put no document below val_fraction: hold out the one lowest-hashed
    moved = None
    if not total.get("val_documents") and total.get("documents", 0) >= 2:
        i = min(range(len(parts)), key=lambda j: part_counts[j]["lowest_train_doc"]["hash"])
        moved = (i, part_counts[i]["lowest_train_doc"])
        total["val_documents"], total["val_tokens"], total["val_bytes"] = 1, moved[1]["tokens"], moved[1]["bytes"]
        total["train_tokens"] -= moved[1]["tokens"]
    itemsize = token_dtype(tok.vocab_size).itemsize
    with open(out_dir / "train.bin", "wb") as train_out, open(out_dir / "val.bin", "wb") as val_out:
        for i, part in enumerate(parts):
            for split, out in (("train", train_out), ("val", val_out)):
                piece = Path(f"{part.out_prefix}.{split}.bin")
                with open(piece, "rb") as f:
                    if moved is not None and moved[0] == i and split == "train":
                        _copy_bytes(f, out, moved[1]["offset"] * itemsize)
                        _copy_bytes(f, val_out, moved[1]["tokens"] * itemsize)
                    shutil.copyfileobj(f, out, COPY_CHUNK)
                piece.unlink()
    if not total.get("val_tokens") or not total.get("train_tokens"):
        raise ValueError(
            f"{total.get('documents', 0)} documents cannot be split into train and validation: tokenize needs "
            "at least 2"
        )
    meta = {
        "dtype": token_dtype(tok.vocab_size).name,
        "vocab_size": tok.vocab_size,
        "special_tokens": tok.special_ids,
        "eot_id": tok.special_ids[ENDOFTEXT],
        "documents": total["documents"],
        "text_bytes": total["text_bytes"],
        "train_tokens": total["train_tokens"],
        "val_tokens": total["val_tokens"],
        "val_fraction": val_fraction,
        # bytes of held-out text per token (the EOT after each document excluded): the compression rate
        "val_bytes_per_token": round(total["val_bytes"] / max(total["val_tokens"] - total["val_documents"], 1), 4),
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def encode_corpus(
    paths: list[Path], tokenizer_dir: Path, out_dir: Path, val_fraction: float = 0.01, workers: int | None = None
) -> dict:
    """Encode every document into `train.bin` / `val.bin` (np.memmap-readable) + `meta.json`.

    The library entry point (a process pool); the tokenize flow runs the same parts on its
    Prefect task runner instead.
    """
    workers = workers or os.cpu_count() or 1
    parts = plan_parts(paths, workers, out_dir)
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(encode_part, part, tokenizer_dir, val_fraction) for part in parts]
        counts = [f.result() for f in tqdm(futures, desc="encode", unit="part")]
    return merge_parts(parts, counts, tokenizer_dir, out_dir, val_fraction)
