"""The tokenize flow on real text: tokenizer files, token arrays, meta, caching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lm.corpus import TokenizeConfig
from lm.tokenizer import Tokenizer

# end to end: Prefect flows, subprocesses, servers (make test-fast skips these)
pytestmark = pytest.mark.slow


def test_tokenize_flow_writes_arrays_that_decode_back(prefect_harness, lmforge_home, data):
    from flows.tokenization import tokenize

    src = data / "tinystories-val-sample" / "tinystories_val.txt"
    cfg = TokenizeConfig(inputs=[str(src)], vocab_size=600, val_fraction=0.05)
    out = Path(tokenize(cfg))
    meta = json.loads((out / "meta.json").read_text())
    assert meta["dtype"] == "uint16" and meta["vocab_size"] == 600 and meta["val_tokens"] > 0
    train = np.memmap(out / "train.bin", dtype=np.uint16, mode="r")
    val = np.memmap(out / "val.bin", dtype=np.uint16, mode="r")
    assert len(train) == meta["train_tokens"] and len(val) == meta["val_tokens"]
    tok = Tokenizer.from_dir(out / "tokenizer")
    text = tok.decode(np.concatenate([train, val]).tolist())
    blocks = [b.strip("\n") for b in src.read_text().split("\n\n") if b.strip()]
    assert sorted(text.split("<|endoftext|>")[:-1]) == sorted(blocks)
    assert 2.5 < meta["val_bytes_per_token"] < 6
    # what the progress lines report: the text encoded, and the BPE sample's pretokenizing rate
    assert meta["text_bytes"] == sum(len(b.encode()) for b in blocks) and meta["bpe"]["pretokenize_mb_per_s"] > 0
    assert Path(tokenize(cfg)) == out  # cache hit


def test_a_small_corpus_always_holds_out_one_document(prefect_harness, lmforge_home, tmp_path, data):
    """Three real TinyStories documents and a val_fraction none of their hashes falls under: one is held out anyway,
    whole, and train + val still hold every document once."""
    from flows.tokenization import tokenize

    stories = (data / "tinystories-val-sample" / "tinystories_val.txt").read_text().split("\n\n")[:3]
    src = tmp_path / "three.jsonl"
    src.write_text("".join(json.dumps({"id": f"s{i}", "text": t.strip()}) + "\n" for i, t in enumerate(stories)))
    out = Path(tokenize(TokenizeConfig(inputs=[str(src)], vocab_size=300, val_fraction=1e-9, workers=2)))
    meta = json.loads((out / "meta.json").read_text())
    tok = Tokenizer.from_dir(out / "tokenizer")
    val = tok.decode(np.fromfile(out / "val.bin", dtype=np.uint16).tolist()).split("<|endoftext|>")[:-1]
    train = tok.decode(np.fromfile(out / "train.bin", dtype=np.uint16).tolist()).split("<|endoftext|>")[:-1]
    assert meta["documents"] == 3 and len(val) == 1 and len(train) == 2
    assert sorted(val + train) == sorted(t.strip() for t in stories)
