"""The cleaning library on real data: readers, language ID, PII, Gopher rules, dedup."""

from __future__ import annotations

import gzip
import json
import random

import pyarrow.parquet as pq
import pytest

from filters import gopher
from filters.dedup import normalize
from filters.document import Document, Stats
from filters.gopher import (
    PUNCT_STRIP,
    STOP_WORDS,
    GopherQualityConfig,
    GopherQualityFilter,
    GopherRepetitionFilter,
    ngram_fractions,
    word_counts,
)
from filters.langid import LanguageConfig, LanguageFilter, predict_language
from filters.partitioned_dedup import MinHashDedupConfig
from filters.pii import PIIMasker, mask_emails, mask_ips, mask_phone_numbers
from filters.readers import InputError, expand_inputs, read_documents
from filters.writer import ParquetShardWriter, read_shards
from tests.dedup_reference import LineDeduper, count_lines, minhash_dedup


# --- readers ------------------------------------------------------------------------------
def test_jsonl_reader_keeps_ids_and_counts_bad_lines(tmp_path, data):
    src = (data / "cc-en-jsonl" / "cc_en_head-0091.jsonl").read_bytes().splitlines()
    bad = tmp_path / "mixed.jsonl.gz"
    lines = [
        src[0],
        b"{not json",
        json.dumps({"id": "x", "no_text": 1}).encode(),
        b'{"text": "bad \xff utf8", "id": "u"}',
        src[1],
    ]
    with gzip.open(bad, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    stats = Stats()
    docs = list(read_documents(bad, stats))
    assert [d.id for d in docs] == [json.loads(src[0])["id"], "u", json.loads(src[1])["id"]]
    assert "\ufffd" in docs[1].text
    read = stats.steps["read"]
    assert read["skipped_bad_json"] == 1 and read["skipped_no_text"] == 1 and read["invalid_utf8_replaced"] == 1


def test_corrupt_gzip_keeps_records_before_the_damage(tmp_path, data):
    raw = gzip.compress((data / "cc-en-jsonl" / "cc_en_head-0091.jsonl").read_bytes())
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(raw[: len(raw) // 2])  # truncated stream
    stats = Stats()
    docs = list(read_documents(broken, stats))
    assert 0 < len(docs) < 10
    assert stats.steps["read"]["files_corrupt"] == 1


def test_truncated_warc_is_counted_not_fatal(tmp_path, data):
    raw = gzip.decompress((data / "web-warc-samples" / "dolma-wget-sample-0000.warc.gz").read_bytes())
    cut = tmp_path / "cut.warc"
    cut.write_bytes(raw[: len(raw) // 2])
    stats = Stats()
    docs = list(read_documents(cut, stats))
    assert len(docs) >= 1
    full = list(read_documents(data / "web-warc-samples" / "dolma-wget-sample-0000.warc.gz", Stats()))
    assert len(docs) < len(full)


def test_warc_extraction_matches_common_crawl_wet(data):
    ours = next(read_documents(data / "web-warc-samples" / "cc-whirlwind.warc.gz", Stats()))
    wet = next(read_documents(data / "web-warc-samples" / "cc-whirlwind.warc.wet", Stats()))
    assert ours.metadata["url"] == "https://an.wikipedia.org/wiki/Escopete"
    ours_words, wet_words = set(ours.text.split()), set(wet.text.split())
    # main-content extraction drops navigation that CC's WET keeps; the article text is shared
    assert len(ours_words & wet_words) / len(ours_words) > 0.8


def test_empty_and_oversized_documents(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    big = tmp_path / "big.jsonl"
    big.write_text(
        json.dumps({"id": "big", "text": "word " * 2_000_000}) + "\n" + json.dumps({"id": "ok", "text": "fine"}) + "\n"
    )
    stats = Stats()
    assert list(read_documents(empty, stats)) == []
    assert [d.id for d in read_documents(big, stats, max_chars=1_000_000)] == ["ok"]
    assert stats.steps["read"]["files_empty"] == 1 and stats.steps["read"]["skipped_too_large"] == 1


def test_missing_input_fails_before_work(tmp_path):
    with pytest.raises(InputError, match="matches no file"):
        expand_inputs([str(tmp_path / "nope" / "*.jsonl")])


def test_text_reader_blocks(data):
    docs = list(
        read_documents(data / "tinystories-val-sample" / "tinystories_val.txt", Stats(), split_blank_lines=True)
    )
    assert len(docs) > 1000 and docs[0].text.startswith("Spot.")


# --- language ID ------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", ["en", "de", "fr", "ru", "zh"])
def test_language_id_on_gold_sentences(data, lang):
    lines = (data / "lingua-langid-testdata" / "sentences" / f"{lang}.txt").read_text().splitlines()[:200]
    correct = sum(predict_language(s)[0] == lang for s in lines)
    assert correct / len(lines) > 0.9


def test_language_filter_records_label_and_drops_others(data):
    en = Document((data / "cs336-a1-fixtures" / "address.txt").read_text(), "en", "t")
    de = Document((data / "cs336-a1-fixtures" / "german.txt").read_text(), "de", "t")
    stats = Stats()
    kept = list(LanguageFilter(LanguageConfig(languages=["en"])).run([en, de], stats))
    assert [d.id for d in kept] == ["en"] and kept[0].metadata["lang"] == "en" and kept[0].metadata["lang_score"] > 0.65
    assert stats.steps["language"]["dropped_language_other"] == 1


# --- PII --------------------------------------------------------------------------------------
def test_pii_masks():
    assert mask_emails("write to a.b-c@mail.stanford.edu today") == ("write to |||EMAIL_ADDRESS||| today", 1)
    for phone in ["2831823829", "(283)-182-3829", "(283) 182 3829", "283-182-3829", "+1 283.182.3829"]:
        assert mask_phone_numbers(f"call {phone} now")[0] == "call |||PHONE_NUMBER||| now", phone
    assert mask_ips("from 192.168.0.1 and 10.0.0.255.")[0] == "from |||IP_ADDRESS||| and |||IP_ADDRESS|||."
    assert mask_ips("version 1.2.3.4.5 and 999.1.1.1")[1] == 0
    stats = Stats()
    doc = next(PIIMasker().run([Document("mail me@x.org or 283-182-3829", "1", "t")], stats))
    assert doc.text == "mail |||EMAIL_ADDRESS||| or |||PHONE_NUMBER|||"
    assert stats.steps["pii"]["masked_emails"] == 1 and stats.steps["pii"]["masked_phones"] == 1


# --- Gopher -----------------------------------------------------------------------------------
def test_gopher_quality_keeps_wiki_drops_junk(data):
    wiki = Document((data / "cs336-a4-fixtures" / "high_quality_wiki_reference.txt").read_text(), "w", "t")
    f = GopherQualityFilter()
    assert f.filter(wiki) is True
    hashtags = " ".join(f"#tag{i} the post and more" for i in range(30))
    assert f.filter(Document(hashtags, "h", "t")) == (False, "gopher_symbol_word_ratio")
    numbers = " ".join(str(i * 7919) for i in range(100)) + " the and of"
    assert f.filter(Document(numbers, "n", "t")) == (False, "gopher_alpha_words_ratio")
    assert f.filter(Document("the cat and the dog", "s", "t")) == (False, "gopher_below_min_words")
    bullets = "\n".join(f"• item number {i} of the list and the rest" for i in range(20))
    assert f.filter(Document(bullets, "b", "t")) == (False, "gopher_bullet_lines_ratio")
    assert (
        GopherQualityFilter(GopherQualityConfig(min_words=None)).filter(Document("the cat and the dog sat", "s", "t"))
        is True
    )


def test_gopher_repetition(data):
    f = GopherRepetitionFilter()
    story = Document((data / "cs336-a1-fixtures" / "address.txt").read_text(), "a", "t")
    assert f.filter(story) is True
    looped = Document(
        "\n".join(["Buy cheap watches online today and save."] * 10 + ["A different line here."]), "l", "t"
    )
    assert f.filter(looped)[1].startswith("gopher_dup_")
    spam = Document(
        " ".join(
            ["click here to win a prize now"] * 3 + ["unique words follow in this sentence about many things"] * 1
        ),
        "s",
        "t",
    )
    assert f.filter(spam)[0] is False


def test_compiled_ngram_fractions_equal_the_python_rules(data):
    """The compiled repetition statistics equal the Python rules' exactly on real text in 388
    languages, crawl pages and random repetitive text; and every code point splits words as
    `str.split` does (checked one code point at a time, below)."""
    if gopher._gopher is None:
        pytest.fail("filters._gopher was not built (make setup builds it with g++)")
    texts = [p.read_text(encoding="utf-8")[:4000] for p in sorted((data / "udhr2-langid").iterdir())]
    texts += [json.loads(line)["text"] for line in sorted((data / "cc-en-jsonl").iterdir())[0].open()][:300]
    rng = random.Random(3)
    vocab = ["the", "cat", "sat", "on", "mat", "Ünï", "猫", "\U0001f600", "a.b", "-"]
    seps = [" ", "\n", "\t", "\u3000", "\xa0", "\x1c", "  "]
    for _ in range(3000):  # small vocabularies: many repeated n-grams and ties
        k = rng.randint(1, len(vocab))
        texts.append("".join(rng.choice(vocab[:k]) + rng.choice(seps) for _ in range(rng.randint(0, 60))))
    texts += ["", "   ", "one", "a b a b a b", "x " * 5000]
    top_ns, dup_ns = [1, 2, 3, 4], [5, 6, 7, 8, 9, 10]
    for text in texts:
        assert ngram_fractions(text, top_ns, dup_ns, compiled=True) == ngram_fractions(
            text, top_ns, dup_ns, compiled=False
        ), text
    # "ab<c>ab" is two equal words (top unigram fraction 1.0) exactly when c is whitespace to str.split
    wrong = [
        c
        for c in range(0x110000)
        if not 0xD800 <= c <= 0xDFFF
        and ngram_fractions(f"ab{chr(c)}ab", [1], [], compiled=True)[0] != [1.0 if chr(c).isspace() else 0.0]
    ]
    assert not wrong, [hex(c) for c in wrong[:10]]


def test_compiled_word_counts_equal_the_python_rules(data):
    """The quality rule's compiled counts equal the Python ones on real text in 388 languages,
    crawl pages and random words of punctuation, capitals, letters and digits; and only ASCII
    words can lower-case to a stop word (what lets the compiled path lower-case ASCII only)."""
    if gopher._gopher is None:
        pytest.fail("filters._gopher was not built (make setup builds it with g++)")
    texts = [p.read_text(encoding="utf-8")[:4000] for p in sorted((data / "udhr2-langid").iterdir())]
    texts += [json.loads(line)["text"] for line in sorted((data / "cc-en-jsonl").iterdir())[0].open()][:300]
    rng = random.Random(5)
    pieces = ["The", "THE", "tHat", "wITH", "Ünï", "猫", "123", "K", "İ", "ǅ", "\u0301", *PUNCT_STRIP]
    seps = [" ", "\n", "\u3000", "\x1c"]
    for _ in range(5000):
        words = ("".join(rng.choice(pieces) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(0, 30)))
        texts.append("".join(w + rng.choice(seps) for w in words))
    texts += ["", " ", "...", "“the” (of) and... to!"]
    for text in texts:
        assert word_counts(text, compiled=True) == word_counts(text, compiled=False), text
    stop_letters = set("".join(STOP_WORDS))
    to_ascii = [c for c in range(128, 0x110000) if chr(c).lower().isascii() and set(chr(c).lower()) & stop_letters]
    assert not to_ascii, [hex(c) for c in to_ascii]


# --- dedup ------------------------------------------------------------------------------------
def test_normalize():
    assert normalize("  Héllo,   WORLD!\n\tÇa va? ") == "hello world ca va"


def test_minhash_finds_the_fuzzy_license_pair(data):
    folder = data / "cs336-a4-fixtures" / "documents_with_fuzzy_duplicates"
    names = sorted(p.name for p in folder.iterdir())
    texts = [(folder / n).read_text() for n in names]
    result = minhash_dedup(texts, names, MinHashDedupConfig(threshold=0.7))
    kept = {n for n, k in zip(names, result.keep) if k}
    assert "pytorch_license.txt" in kept
    assert len({"rails_mit_license.txt", "react_mit_license.txt"} & kept) == 1
    assert result.clusters == 1


def test_minhash_clusters_are_transitive_and_keep_lowest_id(data):
    base = (data / "cs336-a1-fixtures" / "address.txt").read_text().split()
    a = " ".join(base)
    b = " ".join(base[:-1] + ["changed"])
    c = " ".join(base[:-2] + ["changed", "again"])
    result = minhash_dedup([c, b, a, "totally different words here about other things entirely"], ["z", "m", "b", "q"])
    assert list(result.keep) == [False, False, True, True]


def test_line_dedup_drop_all_matches_cs336_fixture(data):
    src = data / "cs336-a4-fixtures" / "documents_with_line_duplicates"
    expected = data / "cs336-a4-fixtures" / "documents_line_deduplicated"
    names = sorted(p.name for p in src.iterdir())
    texts = [(src / n).read_text() for n in names]
    dedup = LineDeduper(count_lines(texts), mode="drop_all")
    for name, text in zip(names, texts):
        assert dedup(text) == (expected / name).read_text(), name


def test_line_dedup_keep_first():
    texts = ["header\nbody one", "header\nbody two", "other\nbody one"]
    dedup = LineDeduper(count_lines(texts))
    assert [dedup(t) for t in texts] == ["header\nbody one", "body two", "other"]
    assert dedup.lines_dropped == 2


def test_parquet_writer_rolls_shards(tmp_path):
    docs = [Document("x" * 1000, str(i), "t", {"lang": "en", "lang_score": 0.9}) for i in range(50)]
    with ParquetShardWriter(tmp_path, max_shard_bytes=10_000, batch_rows=10) as w:
        for d in docs:
            w.write(d)
    assert len(w.paths) > 1
    rows = list(read_shards(w.paths))
    assert [r["id"] for r in rows] == [str(i) for i in range(50)] and rows[0]["lang"] == "en"
    assert pq.read_schema(w.paths[0]).names == [
        "id",
        "text",
        "source",
        "lang",
        "lang_score",
        "quality_score",
        "metadata",
    ]


def test_stats_table_never_shows_an_uncounted_figure_as_zero():
    """The reader counts no bytes in, dedup counts documents only: those cells are "—", a real 0 stays 0."""
    from filters.document import NOT_COUNTED, Stats

    stats = Stats()
    stats.add("read", docs_out=3, bytes_out=120)
    stats.add("minhash_dedup", docs_in=3, docs_out=2, dropped_near_duplicate=1)
    stats.add("quality", docs_in=2, docs_out=0, bytes_in=80, bytes_out=0, dropped_short=2)
    rows = {r["step"]: r for r in stats.table_rows()}
    assert rows["read"]["bytes_in"] == NOT_COUNTED and rows["read"]["bytes_out"] == 120
    assert rows["minhash_dedup"]["bytes_in"] == rows["minhash_dedup"]["bytes_out"] == NOT_COUNTED
    assert rows["quality"]["docs_out"] == 0 and rows["quality"]["bytes_out"] == 0
