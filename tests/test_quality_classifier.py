"""The learned quality filter: training on the shared reference/crawl text, the cached
`quality-model` stage, applying it in clean-data (threshold and top fraction), language ID
unchanged by the fastText switch, and HTML extraction modes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from filters import quality_classifier
from filters.config import CleanConfig
from filters.document import Stats
from filters.extract import html_to_text
from filters.langid import fasttext_top, load_model, predict_language
from filters.pipeline import clean_corpus
from filters.quality_classifier import (
    HIST_BINS,
    KeepRule,
    QualityModelConfig,
    load_classifier,
    ngram_buckets,
    normalize_for_classifier,
    read_texts,
    sample_examples,
    score_bin,
    score_text,
    threshold_for_top_fraction,
    train_quality_classifier,
)
from filters.readers import expand_inputs

REFERENCE = Path(__file__).parent / "data" / "langid_reference.json"


def _sources(data: Path) -> tuple[list[str], list[str]]:
    positives = [
        str(data / "cs336-a4-fixtures" / "high_quality_wiki_reference.txt"),
        str(data / "nltk-gutenberg" / "austen-emma.txt"),
        str(data / "nltk-gutenberg" / "melville-moby_dick.txt"),
    ]
    negatives = [
        str(data / "cc-en-jsonl"),
        str(data / "web-warc-samples"),
        str(data / "cs336-a4-fixtures" / "low_quality_cc.txt"),
    ]
    return positives, negatives


def _config(data: Path, **kw) -> QualityModelConfig:
    positives, negatives = _sources(data)
    return QualityModelConfig(positives=positives, negatives=negatives, example_chars=1000, max_per_class=600, **kw)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    cfg = _config(data)
    stats = Stats()
    result = train_quality_classifier(
        read_texts(expand_inputs(cfg.positives), stats), read_texts(expand_inputs(cfg.negatives), stats), cfg
    )
    path = tmp_path_factory.mktemp("quality") / "model.bin"
    result.model.save_model(str(path))
    return result, path


def test_language_id_is_unchanged_by_the_full_fasttext_build(data):
    """Labels and scores on the lingua test sentences equal those recorded with fasttext-predict."""
    ref = json.loads(REFERENCE.read_text())
    model = load_model()
    root = data / "lingua-langid-testdata" / "sentences"
    for row in ref["predictions"]:
        lines = [line.strip() for line in (root / row["file"]).read_text(encoding="utf-8").splitlines() if line.strip()]
        labels, scores = model.predict(lines[row["line"]], k=2)
        assert [label.removeprefix("__label__") for label in labels] == row["labels"], row
        assert list(scores) == pytest.approx(row["scores"], abs=1e-6), row


def test_compiled_normalisation_equals_the_regex(data):
    """The compiled word/punctuation split gives the `regex` module's text on real text in 388
    languages, crawl pages and random strings over scripts, marks and odd whitespace."""
    if quality_classifier._classifier_text is None:
        pytest.fail("filters._classifier_text was not built (make setup builds it with g++)")
    udhr = sorted((data / "udhr2-langid").iterdir())
    texts = [p.read_text(encoding="utf-8")[:3000] for p in udhr]
    texts += [json.loads(line)["text"] for line in sorted((data / "cc-en-jsonl").iterdir())[0].open()][:200]
    rng = random.Random(0)
    alphabet = [chr(c) for c in range(0x3000)] + ["\U0001f600", "\U00020000", "\u0301", "İ", "\u2028", "\x1c", "\ufffd"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(5000)]
    texts += ["", " \n\t ", "snake_case and 3.14, ok?!", "ＦＵＬＬ width"]
    for text in texts:
        assert normalize_for_classifier(text, compiled=True) == normalize_for_classifier(text, compiled=False), text


def test_direct_fasttext_calls_equal_the_wrapper(trained, data):
    """`fasttext_top` skips fastText's Python wrapper: the same labels and scores, both models."""
    _, path = trained
    lid, classifier = load_model(), load_classifier(str(path))
    root = data / "lingua-langid-testdata" / "sentences"
    lines = [line for f in sorted(root.iterdir())[:20] for line in f.read_text(encoding="utf-8").splitlines()[:20]]
    for line in lines + [""]:
        for model in (lid, classifier):
            labels, scores = model.predict(line, k=2)
            assert fasttext_top(model, line, k=2) == list(zip(scores.tolist(), labels)), line
        label, score = predict_language(line, lid)
        assert (label, score) == (lid.predict(line, k=1)[0][0].removeprefix("__label__"), lid.predict(line, k=1)[1][0])


def test_ngram_buckets_follow_the_training_text(trained):
    """A few hundred examples get a model of tens of MB, not fastText's 2M buckets (800 MB)."""
    result, path = trained
    assert result.model.f.getArgs().bucket == 1 << 18  # ~100k bigrams in the fixture's examples
    assert path.stat().st_size < 150e6
    assert ngram_buckets(["a b c"] * 10, 2) == 1 << 16
    assert ngram_buckets(["w " * 1000] * 10_000, 2) == 2_000_000
    assert ngram_buckets(["a b c"], 1) == 0


def test_classifier_separates_reference_text_from_crawl(trained, data):
    result, path = trained
    held = result.metrics["heldout"]
    assert held["positives"] >= 15 and held["negatives"] >= 15
    assert held["f1"] >= 0.85 and held["precision"] >= 0.8 and held["recall"] >= 0.8, held
    model = load_classifier(str(path))
    wiki = (data / "cs336-a4-fixtures" / "high_quality_wiki_reference.txt").read_text()
    crawl = (data / "cs336-a4-fixtures" / "low_quality_cc.txt").read_text()
    assert score_text(wiki, model) > 0.5 > score_text(crawl, model)


def test_training_is_deterministic(trained, data):
    """Same inputs and settings, same model: what makes a rebuilt artifact equal to the cached one."""
    result, _ = trained
    cfg = _config(data)
    again = train_quality_classifier(
        read_texts(expand_inputs(cfg.positives), Stats()), read_texts(expand_inputs(cfg.negatives), Stats()), cfg
    )
    assert again.metrics == result.metrics


def test_too_little_text_is_a_clear_error(data):
    cfg = QualityModelConfig(positives=["x"], negatives=["y"])
    with pytest.raises(ValueError, match="too little training text"):
        train_quality_classifier(
            ["only a few words here"] * 3, read_texts(expand_inputs([str(data / "cc-en-jsonl")]), Stats()), cfg
        )


def test_sample_is_capped_deterministic_and_order_free():
    items = [f"example number {i}" for i in range(500)] + ["example number 3"]  # one duplicate
    a = sample_examples(items, 50)
    assert len(a) == 50 and len(set(a)) == 50
    assert a == sample_examples(list(reversed(items)), 50)


def test_top_fraction_threshold_is_exact_on_a_histogram():
    scores = [i / 100 for i in range(100)]  # 100 documents, 0.00 … 0.99
    hist = [0] * HIST_BINS
    for score in scores:
        hist[score_bin(score)] += 1

    def kept(fraction: float) -> list[float]:
        return [s for s in scores if s >= threshold_for_top_fraction(hist, fraction)]

    assert kept(0.10) == scores[90:]
    assert kept(0.25) == scores[75:]
    assert kept(1.0) == scores
    assert kept(0.001) == [0.99]  # at least the top bin
    with pytest.raises(ValueError, match="exactly one"):
        KeepRule(threshold=0.5, top_fraction=0.1)


@pytest.mark.parametrize("keep", [{"threshold": 0.5}, {"top_fraction": 0.5}], ids=["threshold", "top_fraction"])
def test_clean_data_scores_every_document_and_applies_the_rule(trained, data, tmp_path, keep):
    """Mixed crawl + stories: every kept row carries its score as a column; threshold drops below
    0.5, top_fraction keeps half of what reaches the classifier; both counted in stats."""
    _, path = trained
    cfg = CleanConfig(
        inputs=[str(data / "cc-en-jsonl"), str(data / "tinystories-val-sample")],
        split_text_on_blank_lines=True,
        quality={"min_words": 20},
        classifier={"model": str(path), "keep": keep},
    )
    out = tmp_path / "out"
    out.mkdir()
    shards, stats = clean_corpus(expand_inputs(cfg.inputs), cfg, tmp_path / "work", out)
    scores = [
        s
        for shard in shards
        for s in pq.read_table(shard, columns=["quality_score"]).column("quality_score").to_pylist()
    ]
    counts = stats.to_dict()
    reached = counts["quality_classifier"]["docs_in"]
    assert scores and all(s is not None for s in scores)
    if "threshold" in keep:
        assert min(scores) >= 0.5
        assert (
            counts["quality_classifier"]["dropped_quality_low_score"]
            == reached - counts["quality_classifier"]["docs_out"]
            > 0
        )
    else:
        top = counts["quality_top_fraction"]
        assert top["docs_in"] - top["docs_out"] == top["dropped_quality_below_top_fraction"] > 0
        # half of what reached the classifier, to one histogram bin's ties and the dedup in between
        assert abs(top["dropped_quality_below_top_fraction"] - reached / 2) <= 0.05 * reached


def test_html_extraction_modes(data):
    html = (data / "cs336-a4-fixtures" / "moby.html").read_bytes()
    full = html_to_text(html, main_content=False)
    assert full == (data / "cs336-a4-fixtures" / "moby_extracted.txt").read_text()
    main = html_to_text(html)
    assert main and len(main) <= len(full)


def test_silu_is_public_and_exact():
    import torch
    import torch.nn.functional as F

    from lm.model import silu

    x = torch.linspace(-6, 6, 101)
    assert torch.allclose(silu(x), F.silu(x), atol=1e-7)


@pytest.mark.slow
def test_quality_model_stage_caches_and_feeds_clean_data(data, tmp_path, lmforge_home, prefect_server):
    """CLI end to end: train (artifact with model, metrics, plot), rerun = cache hit, clean-data by key."""
    positives, negatives = _sources(data)
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    args = (
        [sys.executable, "-m", "flows.cli", "quality-model"]
        + [a for p in positives for a in ("-p", p)]
        + [a for n in negatives for a in ("-n", n)]
    )
    first = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    art = Path(first.stdout.strip().splitlines()[-1])
    assert {"model.bin", "metrics.json", "scores.png", "manifest.json"} <= {p.name for p in art.iterdir()}
    assert json.loads((art / "metrics.json").read_text())["heldout"]["f1"] > 0.8
    built = (art / "manifest.json").stat().st_mtime_ns
    # the same settings through the registry's generic command: the same artifact, a cache hit
    own = tmp_path / "quality.yaml"
    own.write_text(json.dumps({"positives": positives, "negatives": negatives}))
    second = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "quality-model", "-c", str(own)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert second.returncode == 0 and second.stdout.strip().splitlines()[-1] == str(art), second.stderr[-3000:]
    assert (art / "manifest.json").stat().st_mtime_ns == built  # a cache hit: nothing rebuilt
    cfg = tmp_path / "clean.yaml"
    cfg.write_text(
        json.dumps(
            {
                "inputs": [str(data / "cc-en-jsonl"), str(data / "tinystories-val-sample")],
                "split_text_on_blank_lines": True,
                "quality": {"min_words": 20},
                "classifier": {"model": art.name, "keep": {"threshold": 0.5}},
            }
        )
    )
    clean = subprocess.run(
        [sys.executable, "-m", "flows.cli", "clean-data", "-c", str(cfg)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert clean.returncode == 0, clean.stderr[-3000:]
    stats = json.loads((Path(clean.stdout.strip().splitlines()[-1]) / "stats.json").read_text())
    assert stats["quality_classifier"]["dropped_quality_low_score"] > 0 and stats["quality_classifier"]["docs_out"] > 0


@pytest.mark.slow  # imports every stage's flow (TRL, vLLM)
def test_quality_model_is_a_registered_stage_with_a_default_deployment(data):
    """One registry entry gives the CLI command, `lmforge serve`'s deployment and its parameters."""
    from flows.deployments import default_deployments
    from flows.registry import STAGES

    deployment = next(d for d in default_deployments() if d.flow_name == "quality-model")
    cfg = QualityModelConfig.model_validate(deployment.parameters["config"])
    assert cfg.positives and cfg.negatives and all(Path(p).exists() for p in cfg.positives + cfg.negatives)
    assert STAGES["quality-model"].sections == ("quality_model",)
