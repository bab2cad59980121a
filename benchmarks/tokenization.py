"""lmforge's BPE trainer and tokenizer vs Hugging Face `tokenizers` and tiktoken.

    .venv/bin/python -m benchmarks.tokenization [--vocab-size 10000]
    .venv/bin/python -m benchmarks.tokenization --scale-mb 100 --vocab-size 32000 [--python-merges] [--workdir DIR]

Scale mode (issue #25): the shared data's real text (multilingual included) repeated with 3%
of its words mutated in each copy, so the distinct pretokens keep growing as web text's do,
up to --scale-mb; then lmforge (compiled core), HF `tokenizers` and nanochat's `rustbpe`
(`pip install rustbpe` to include it; GPT-2's split pattern) train the same vocabulary, each
in its own process: wall, peak RSS, and lmforge's merges against the Python fallback
(--python-merges: slow at scale) or, always, the reference on a 1 MB prefix.

Training: wall time and peak memory (each trainer in its own process), same corpus, same
vocab size and special token. Encoding: MB/s single process on the same vocabulary, plus
the tokenize flow's multi-process encoder. Compression: bytes/token on held-out text.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import tempfile
from pathlib import Path

from benchmarks.common import assemble_corpus, peak_rss_mb, timed

SPECIAL = "<|endoftext|>"


def _train_ours(path: str, vocab_size: int, q) -> None:
    from lm.bpe import train_bpe_with_summary

    secs, (vocab, merges, summary) = timed(
        train_bpe_with_summary, path, vocab_size, [SPECIAL], workers=2, progress=False
    )
    # its pretokenizing workers are processes: their peak (the largest one's) counts too
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    q.put(
        {
            "seconds": secs,
            "peak_mb": peak_rss_mb() + children,
            "summary": summary,
            "merges": [(a.hex(), b.hex()) for a, b in merges],
        }
    )


def _train_ours_python(path: str, vocab_size: int, q) -> None:
    from lm import bpe

    bpe._bpe_core = None  # the fallback loop, as on a machine without a compiler
    _train_ours(path, vocab_size, q)


def _train_rustbpe(path: str, vocab_size: int, q) -> None:
    import rustbpe

    from lm.pretokenize import GPT2_PATTERN

    def documents():  # streamed from the file, so its peak RSS is its own, not a whole corpus held for it
        with open(path, encoding="utf-8") as f:
            tail = ""
            while block := f.read(1 << 20):
                *docs, tail = (tail + block).split(SPECIAL)
                yield from docs
            yield tail

    def train():
        rustbpe.Tokenizer().train_from_iterator(documents(), vocab_size - 1, pattern=GPT2_PATTERN)  # no special token

    secs, _ = timed(train)
    q.put({"seconds": secs, "peak_mb": peak_rss_mb()})


def _train_hf(path: str, vocab_size: int, q) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[SPECIAL],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    secs, _ = timed(tok.train, [path], trainer)
    q.put({"seconds": secs, "peak_mb": peak_rss_mb()})


def in_process(target, *args) -> dict:
    q = mp.get_context("spawn").Queue()
    p = mp.get_context("spawn").Process(target=target, args=(*args, q))
    p.start()
    out = q.get()
    p.join()
    return out


def scale_corpus(out: Path, target_mb: float, mutate: float = 0.03, seed: int = 0) -> None:
    """Real text (English and the language-ID samples' other languages), copied until target_mb,
    each copy with `mutate` of its words changed by one letter: new distinct pretokens keep coming."""
    import glob
    import random

    from common.paths import data_root

    rng = random.Random(seed)
    d = data_root()
    docs = []
    for pattern in [
        "tinystories-*/*",
        "nltk-gutenberg/*",
        "wikitext-2-tokenized/*",
        "udhr2-langid/*",
        "lingua-langid-testdata/**/*",
    ]:
        for f in sorted(glob.glob(str(d / pattern), recursive=True)):
            if Path(f).is_file():
                docs.extend(
                    b for b in Path(f).read_bytes().decode("utf-8", errors="replace").split("\n\n") if b.strip()
                )
    letters = "abcdefghijklmnopqrstuvwxyzéöçñ"
    written = 0
    with open(out, "w", encoding="utf-8") as f:
        while written < target_mb * 1e6:
            for doc in docs:
                words = doc.split(" ")
                for i in rng.sample(range(len(words)), k=int(len(words) * mutate)):
                    w = words[i]
                    if w:
                        j = rng.randrange(len(w))
                        words[i] = w[:j] + rng.choice(letters) + w[j + 1 :]
                chunk = " ".join(words) + SPECIAL
                f.write(chunk)
                written += len(chunk.encode("utf-8"))
                if written >= target_mb * 1e6:
                    break


def scale(args) -> None:
    tmp = Path(args.workdir or tempfile.mkdtemp())
    tmp.mkdir(parents=True, exist_ok=True)
    corpus = tmp / f"scale-{args.scale_mb:g}mb.txt"
    if not corpus.exists():  # the corpus is deterministic (seeded): a --workdir keeps it for the next run
        scale_corpus(corpus, args.scale_mb)
    print(f"scale corpus: {corpus.stat().st_size / 1e6:.0f} MB, vocab {args.vocab_size:,}")
    results = {
        "lmforge": in_process(_train_ours, str(corpus), args.vocab_size),
        "HF tokenizers": in_process(_train_hf, str(corpus), args.vocab_size),
    }
    try:
        import rustbpe  # noqa: F401

        results["rustbpe"] = in_process(_train_rustbpe, str(corpus), args.vocab_size)
    except ImportError:
        print("rustbpe not installed (`pip install rustbpe`): left out")
    if args.python_merges:
        results["lmforge, Python merge loop"] = in_process(_train_ours_python, str(corpus), args.vocab_size)
    s = results["lmforge"]["summary"]
    for name, r in results.items():
        extra = (
            f" (pretokenize {s['pretokenize_s']:.1f} s, merges {s['merge_s']:.1f} s, "
            f"{s['distinct_pretokens']:,} distinct pretokens)"
            if name == "lmforge"
            else ""
        )
        print(f"{name}: {r['seconds']:.1f} s, peak RSS {r['peak_mb'] / 1e3:.2f} GB{extra}")
    print("(lmforge's peak RSS: its process plus its largest pretokenizing worker)")
    for peer in ("HF tokenizers", "rustbpe"):
        if peer in results:
            print(
                f"lmforge / {peer}: wall {results['lmforge']['seconds'] / results[peer]['seconds']:.2f}x, "
                f"peak RSS {results['lmforge']['peak_mb'] / results[peer]['peak_mb']:.2f}x"
            )
    if args.python_merges:
        same = results["lmforge"]["merges"] == results["lmforge, Python merge loop"]["merges"]
        print(f"merges identical to the Python loop: {same}")
    prefix = tmp / "prefix.txt"
    prefix.write_bytes(corpus.read_bytes()[:1_000_000].decode("utf-8", errors="ignore").encode())
    from lm.bpe import train_bpe, train_bpe_reference

    same = train_bpe(prefix, 600, [SPECIAL], workers=1, progress=False) == train_bpe_reference(
        prefix.read_text(), 600, [SPECIAL]
    )
    print(f"merges identical to the reference on a 1 MB prefix (vocab 600): {same}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab-size", type=int, default=10_000)
    ap.add_argument("--scale-mb", type=float, help="scale mode: a mutated-copies corpus of this size (issue #25)")
    ap.add_argument(
        "--python-merges", action="store_true", help="scale mode: also train with the Python merge loop and compare"
    )
    ap.add_argument("--workdir", help="scale mode: where the corpus is written and, on a later run, reused")
    args = ap.parse_args()
    if args.scale_mb:
        scale(args)
        return
    tmp = Path(tempfile.mkdtemp())
    corpus = tmp / "corpus.txt"
    docs = assemble_corpus(corpus)
    mb = corpus.stat().st_size / 1e6
    print(f"corpus: {mb:.2f} MB, {len(docs):,} documents")

    # --- training ---
    ours = in_process(_train_ours, str(corpus), args.vocab_size)
    hf = in_process(_train_hf, str(corpus), args.vocab_size)
    s = ours["summary"]
    print(
        f"train  lmforge: {ours['seconds']:.2f} s (pretokenize {s['pretokenize_s']:.2f} s, merge {s['merge_s']:.2f} s, "
        f"{s['distinct_pretokens']:,} distinct pretokens), peak {ours['peak_mb']:.0f} MB"
    )
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
    raw = tiktoken.Encoding(
        name="peer", pat_str=tok._tiktoken._pat_str, mergeable_ranks=ranks, special_tokens={SPECIAL: 256}
    )
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
