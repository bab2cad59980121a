"""The quality classifier: held-out quality, training time, and scoring throughput next to
language ID's (both fastText, one core, the same documents).

    .venv/bin/python -m benchmarks.quality_classifier

Trains on the demo's sources (Gutenberg + the CS336 Wikipedia reference vs. cc-en-jsonl,
the WARC samples and the CS336 low-quality crawl text), then scores TinyStories paragraphs
and crawl documents with it and with lid.176.
"""

from __future__ import annotations

import argparse
import time

from filters.document import Stats
from filters.langid import load_model, predict_language
from filters.quality_classifier import QualityModelConfig, read_texts, score_text, train_quality_classifier
from filters.readers import expand_inputs
from lm.paths import data_root


def demo_config() -> QualityModelConfig:
    d = data_root()
    return QualityModelConfig(positives=[str(d / "nltk-gutenberg"), str(d / "cs336-a4-fixtures" / "high_quality_wiki_reference.txt")],
                              negatives=[str(d / "cc-en-jsonl"), str(d / "web-warc-samples"), str(d / "cs336-a4-fixtures" / "low_quality_cc.txt")],
                              example_chars=1000)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=5000, help="documents to score")
    args = ap.parse_args()
    cfg = demo_config()
    t0 = time.perf_counter()
    trained = train_quality_classifier(read_texts(expand_inputs(cfg.positives), Stats()), read_texts(expand_inputs(cfg.negatives), Stats()), cfg)
    train_s = time.perf_counter() - t0
    held, counts = trained.metrics["heldout"], trained.metrics["train"]
    print(f"trained in {train_s:.1f} s on {counts['positives']} + {counts['negatives']} examples; held out ({held['positives']} + {held['negatives']}): "
          f"precision {held['precision']:.3f} recall {held['recall']:.3f} F1 {held['f1']:.3f}")

    d = data_root()
    files = expand_inputs([str(d / "tinystories-val-sample"), str(d / "cc-en-jsonl"), str(d / "web-warc-samples")])
    docs = [t for t in read_texts(files, Stats(), split_text_on_blank_lines=True)][: args.docs]
    lid = load_model()
    rates = {}
    for name, fn in (("quality classifier", lambda t: score_text(t, trained.model)), ("language ID (lid.176)", lambda t: predict_language(t, lid))):
        t0 = time.perf_counter()
        for t in docs:
            fn(t)
        rates[name] = len(docs) / (time.perf_counter() - t0)
        print(f"{name:24s} {rates[name]:10,.0f} docs/s on one core ({len(docs):,} documents, {sum(map(len, docs)) / len(docs):,.0f} chars each)")
    print(f"ratio quality classifier / language ID: {rates['quality classifier'] / rates['language ID (lid.176)']:.2f}x")


if __name__ == "__main__":
    main()
