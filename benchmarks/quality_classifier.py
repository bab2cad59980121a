"""The quality classifier: held-out quality, training time, and scoring throughput next to
language ID's (both fastText, one core, the same documents).

    .venv/bin/python -m benchmarks.quality_classifier
    .venv/bin/python -m benchmarks.quality_classifier --downstream WITH_KEY WITHOUT_KEY TOKENIZE_KEY [--steps 300]

Trains on the demo's sources (Gutenberg + the CS336 Wikipedia reference vs. cc-en-jsonl,
the WARC samples and the CS336 low-quality crawl text), then scores TinyStories paragraphs
and crawl documents with it and with lid.176.

`--downstream`: the effect on a model. Two clean-data artifacts (with and without the
classifier) are encoded with one tokenizer (a tokenize artifact's), the same model is
trained for the same steps (same token budget) on each, and both are evaluated on
WikiText-2's validation text (reference-quality, never a classifier input) encoded with
that tokenizer.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from common.paths import data_root
from filters.document import Stats
from filters.langid import load_model, predict_language
from filters.quality_classifier import QualityModelConfig, read_texts, score_text, train_quality_classifier
from filters.readers import expand_inputs


def demo_config() -> QualityModelConfig:
    d = data_root()
    return QualityModelConfig(
        positives=[str(d / "nltk-gutenberg"), str(d / "cs336-a4-fixtures" / "high_quality_wiki_reference.txt")],
        negatives=[
            str(d / "cc-en-jsonl"),
            str(d / "web-warc-samples"),
            str(d / "cs336-a4-fixtures" / "low_quality_cc.txt"),
        ],
        example_chars=1000,
    )


def downstream(with_key: str, without_key: str, tokenize_key: str, steps: int) -> None:
    from flows.store import ArtifactStore
    from lm.checkpoint import load_model
    from lm.corpus import encode_corpus
    from lm.tokenizer import Tokenizer
    from lm.train import PretrainConfig, evaluate, train

    store = ArtifactStore()
    tok_dir = store.find(tokenize_key).path / "tokenizer"
    cfg = PretrainConfig(
        model={"d_model": 192, "num_layers": 4, "num_heads": 6, "context_length": 256},
        batch_size=16,
        max_steps=steps,
        lr=0.002,
        min_lr=0.0002,
        warmup_steps=max(1, steps // 10),
        eval_interval=steps,
        checkpoint_interval=steps,
        device="cpu",
        compile=False,
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wiki = (data_root() / "wikitext-2-tokenized" / "valid.txt").read_text(encoding="utf-8")
        wiki_tokens = np.array(Tokenizer.from_dir(tok_dir).encode(wiki), dtype=np.int64)
        for name, key in (("without classifier", without_key), ("with classifier", with_key)):
            shards = sorted(store.find(key).path.glob("*.parquet"))
            (work / name).mkdir()
            meta = encode_corpus(shards, tok_dir, work / name, val_fraction=0.02, workers=2)
            summary = train(cfg, work / name, work / f"run-{name}", progress=False)
            model = load_model(work / f"run-{name}" / "checkpoint")
            wiki_loss = evaluate(model, wiki_tokens, cfg.model_copy(update={"eval_batches": 20}), "cpu", nullcontext())
            print(
                f"{name:20s} {meta['train_tokens']:>11,} train tokens; {summary['tokens']:,} seen; own "
                f"validation {summary['final_val_loss']:.4f}; "
                f"WikiText-2 validation {wiki_loss:.4f}",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=5000, help="documents to score")
    ap.add_argument(
        "--downstream",
        nargs=3,
        metavar=("WITH", "WITHOUT", "TOKENIZE"),
        help="clean-data keys with/without the classifier, a tokenize key",
    )
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    if args.downstream:
        downstream(*args.downstream, args.steps)
        return
    cfg = demo_config()
    t0 = time.perf_counter()
    trained = train_quality_classifier(
        read_texts(expand_inputs(cfg.positives), Stats()), read_texts(expand_inputs(cfg.negatives), Stats()), cfg
    )
    train_s = time.perf_counter() - t0
    held, counts = trained.metrics["heldout"], trained.metrics["train"]
    with tempfile.TemporaryDirectory() as tmp:
        trained.model.save_model(f"{tmp}/model.bin")
        model_mb = Path(f"{tmp}/model.bin").stat().st_size / 1e6
    print(
        f"trained in {train_s:.1f} s on {counts['positives']} + {counts['negatives']} examples; held out "
        f"({held['positives']} + {held['negatives']}): "
        f"precision {held['precision']:.3f} recall {held['recall']:.3f} F1 {held['f1']:.3f}; "
        f"model {model_mb:.0f} MB ({trained.model.f.getArgs().bucket:,} n-gram buckets)"
    )

    d = data_root()
    files = expand_inputs([str(d / "tinystories-val-sample"), str(d / "cc-en-jsonl"), str(d / "web-warc-samples")])
    docs = [t for t in read_texts(files, Stats(), split_text_on_blank_lines=True)][: args.docs]
    lid = load_model()
    rates = {}
    for name, fn in (
        ("quality classifier", lambda t: score_text(t, trained.model)),
        ("language ID (lid.176)", lambda t: predict_language(t, lid)),
    ):
        t0 = time.perf_counter()
        for t in docs:
            fn(t)
        rates[name] = len(docs) / (time.perf_counter() - t0)
        print(
            f"{name:24s} {rates[name]:10,.0f} docs/s on one core ({len(docs):,} documents, "
            f"{sum(map(len, docs)) / len(docs):,.0f} chars each)"
        )
    print(
        f"ratio quality classifier / language ID: {rates['quality classifier'] / rates['language ID (lid.176)']:.2f}x"
    )


if __name__ == "__main__":
    main()
