"""lmforge's BPE trainer and tokenizer vs Hugging Face `tokenizers` and tiktoken.

    .venv/bin/python -m benchmarks.tokenization [--vocab-size 10000]

Training: wall time and peak memory (each trainer in its own process), same corpus, same
vocab size and special token. Encoding: MB/s single process on the same vocabulary, plus
the tokenize flow's multi-process encoder. Compression: bytes/token on held-out text.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
from pathlib import Path

from benchmarks.common import assemble_corpus, peak_rss_mb, timed

SPECIAL = "<|endoftext|>"


def _train_ours(path: str, vocab_size: int, q) -> None:
    from lm.bpe import train_bpe

    secs, (vocab, merges) = timed(train_bpe, path, vocab_size, [SPECIAL], workers=2, progress=False)
    q.put({"seconds": secs, "peak_mb": peak_rss_mb(), "summary": train_bpe.last_summary, "merges": [(a.hex(), b.hex()) for a, b in merges]})


def _train_hf(path: str, vocab_size: int, q) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[SPECIAL], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    secs, _ = timed(tok.train, [path], trainer)
    q.put({"seconds": secs, "peak_mb": peak_rss_mb()})


def in_process(target, *args) -> dict:
    q = mp.get_context("spawn").Queue()
    p = mp.get_context("spawn").Process(target=target, args=(*args, q))
    p.start()
    out = q.get()
    p.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab-size", type=int, default=10_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    corpus = tmp / "corpus.txt"
    docs = assemble_corpus(corpus)
    mb = corpus.stat().st_size / 1e6
    print(f"corpus: {mb:.2f} MB, {len(docs):,} documents")

    # --- training ---
    ours = in_process(_train_ours, str(corpus), args.vocab_size)
    hf = in_process(_train_hf, str(corpus), args.vocab_size)
    s = ours["summary"]
    print(f"train  lmforge: {ours['seconds']:.2f} s (pretokenize {s['pretokenize_s']:.2f} s, merge {s['merge_s']:.2f} s, "
          f"{s['distinct_pretokens']:,} distinct pretokens), peak {ours['peak_mb']:.0f} MB")
    print(f"train  HF BpeTrainer: {hf['seconds']:.2f} s, peak {hf['peak_mb']:.0f} MB")
    print(f"train  ratio lmforge/HF wall time: {ours['seconds'] / hf['seconds']:.2f}x")

    # --- encoding: the same vocabulary through each backend ---
    from tokenizers import Tokenizer as HFTokenizer

    from lm.tokenizer import Tokenizer

    merges = [(bytes.fromhex(a), bytes.fromhex(b)) for a, b in ours["merges"]]
    vocab = {i: bytes([i]) for i in range(256)}
    vocab[256] = SPECIAL.encode()
    for a, b in merges:
        vocab[len(vocab)] = a + b
    tok = Tokenizer(vocab, merges, [SPECIAL])
    tok.save(tmp / "tok")
    hf_tok = HFTokenizer.from_file(str(tmp / "tok" / "tokenizer.json"))
    held_out, train_docs = docs[::50], docs
    text_mb = sum(len(d.encode()) for d in train_docs) / 1e6
    import tiktoken

    ranks = {b: i for i, b in tok.vocab.items() if i != 256}
    raw = tiktoken.Encoding(name="peer", pat_str=tok._tiktoken._pat_str, mergeable_ranks=ranks, special_tokens={SPECIAL: 256})
    t_fast, ids_fast = timed(lambda: [tok.encode(d) for d in train_docs], repeat=3)
    t_tik, ids_tik = timed(lambda: [raw.encode(d, allowed_special="all") for d in train_docs], repeat=3)
    t_tik_all, _ = timed(lambda: raw.encode(SPECIAL.join(train_docs), allowed_special="all"), repeat=3)
    t_hf, ids_hf = timed(lambda: [e.ids for e in hf_tok.encode_batch(train_docs)], repeat=1)
    sample = train_docs[:2000]
    t_ref, ids_ref = timed(lambda: [tok.encode_reference(d) for d in sample])
    same = ids_fast == ids_hf == ids_tik and ids_ref == ids_fast[:2000]
    print(f"encode lmforge fast path (one call per doc): {text_mb / t_fast:.1f} MB/s")
    print(f"encode tiktoken on the same ranks, one call per doc: {text_mb / t_tik:.1f} MB/s")
    print(f"encode tiktoken, one call for everything: {text_mb / t_tik_all:.1f} MB/s")
    print(f"encode HF tokenizers encode_batch: {text_mb / t_hf:.1f} MB/s")
    print(f"encode lmforge reference encoder: {sum(len(d.encode()) for d in sample) / 1e6 / t_ref:.2f} MB/s")
    print(f"encode ratio lmforge/tiktoken (per doc): {t_tik / t_fast:.2f}x; lmforge/HF: {t_hf / t_fast:.2f}x")
    print(f"identical ids on all {len(train_docs):,} documents (lmforge == tiktoken == HF; reference on 2,000): {same}")

    # --- the flow's multi-process encoder ---
    from lm.corpus import encode_corpus

    docs_file = tmp / "docs.jsonl"
    docs_file.write_text("".join(json.dumps({"id": str(i), "text": d}) + "\n" for i, d in enumerate(train_docs)))
    (tmp / "arrays").mkdir()
    t_mp, meta = timed(encode_corpus, [docs_file], tmp / "tok", tmp / "arrays", 0.02, 2)
    print(f"encode flow (2 processes, incl. reading JSONL and writing arrays): {text_mb / t_mp:.1f} MB/s")
    held = sum(len(d.encode()) for d in held_out) / sum(len(tok.encode(d)) for d in held_out)
    print(f"compression on held-out docs: {held:.3f} bytes/token (vocab {args.vocab_size})")


if __name__ == "__main__":
    main()
