"""A task's rows: read from its files (JSONL, Parquet, CSV, a `datasets` folder) or generated (2-digit
addition, optionally taught by an unreliable teacher).

A `datasets` save_to_disk folder is read by `datasets`. Files are not: on JSONL and Parquet its loaders give
the same rows (tests/test_rl.py checks, on GSM8K) but first write an Arrow copy into the Hugging Face cache;
on CSV its loader infers types (an answer `055` becomes 55), and a broken JSONL line is reported without its
file or line. Here a CSV is read as text and a bad line is named `file:line`."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from common.configfile import ConfigError


def hash_fraction(row: dict) -> float:
    """A row's place in [0, 1) by a hash of its content: a split that does not depend on the file's order."""
    digest = hashlib.sha1(json.dumps(row, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def read_rows(path: Path) -> list[dict]:
    """Rows of a JSONL, Parquet or CSV file, or of a `datasets` save_to_disk folder."""
    if not path.exists():
        raise ConfigError(f"task data {path} does not exist")
    if path.is_dir():
        from datasets import load_from_disk

        try:
            return list(load_from_disk(str(path)))
        except (FileNotFoundError, ValueError) as e:
            raise ConfigError(f"task data {path}: not a `datasets` save_to_disk folder ({e})") from None
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix in (".jsonl", ".jsonl.gz", ".json"):
        import gzip

        opener = gzip.open if path.suffix == ".gz" else open
        rows = []
        with opener(path, "rt", encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ConfigError(f"{path}:{i}: not a JSON object ({e.msg})") from None
                if not isinstance(row, dict):
                    raise ConfigError(f"{path}:{i}: expected a JSON object per line, found a {type(row).__name__}")
                rows.append(row)
        return rows
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if suffix == ".csv":
        import pandas as pd

        return pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records")
    raise ConfigError(f"task data {path}: unsupported format (JSONL, Parquet, CSV or a `datasets` folder)")


def addition_problems(seed: int = 0, teacher_errors: float = 0.0) -> dict[str, list[dict]]:
    """All 10,000 pairs (a, b) in [0, 100)², shuffled and split 8,000 / 1,000 / 1,000 (train / val / test).

    `teacher_errors` > 0 adds a `teacher` column: the sum as an unreliable teacher writes it, with one digit
    slipped to another in that share of rows (at random, seeded). Demonstrations like these are what imitation
    learns from; a verifier that knows the true sum is what reinforcement learning can use instead."""
    pairs = [(a, b) for a in range(100) for b in range(100)]
    rng = random.Random(seed)
    rng.shuffle(pairs)
    rows = [{"prompt": f"{a:02d}+{b:02d}=", "answer": f"{a + b:03d}"} for a, b in pairs]
    if teacher_errors:
        slips = random.Random(f"teacher-{seed}")
        for row in rows:
            row["teacher"] = _slip(row["answer"], slips) if slips.random() < teacher_errors else row["answer"]
    return {"train": rows[:8000], "val": rows[8000:9000], "test": rows[9000:]}


def _slip(answer: str, rng: random.Random) -> str:
    """The answer with one digit (chosen at random) replaced by another digit."""
    i = rng.randrange(len(answer))
    wrong = rng.choice([d for d in "0123456789" if d != answer[i]])
    return answer[:i] + wrong + answer[i + 1 :]
