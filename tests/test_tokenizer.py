"""BPE training and the tokenizer against their specifications and peers, on real text."""

from __future__ import annotations

import io
import random
import tracemalloc

import pytest
from tokenizers import Tokenizer as HFTokenizer

from lm.bpe import train_bpe, train_bpe_reference
from lm.pretokenize import count_pretokens, count_pretokens_utf8, find_chunk_boundaries, pretokenize_file
from lm.tokenizer import Tokenizer

SPECIAL = ["<|endoftext|>"]
HARD_TEXT = (
    "Héllo wörld! 🙂🙃 emoji, CJK 世界你好, Ελληνικά, русский.\n\n\n   spaces   \t\ttabs\r\n"
    "it's we'll they've I'd 12345 3.14 <|endoftext|> after<|endoftext|><|endoftext|>end  "
)


@pytest.fixture(scope="module")
def gpt2(data) -> Tokenizer:
    d = data / "cs336-a1-fixtures"
    return Tokenizer.from_files(d / "gpt2_vocab.json", d / "gpt2_merges.txt", SPECIAL)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> Tokenizer:
    vocab, merges = train_bpe(data / "cs336-a1-fixtures" / "corpus.en", 600, SPECIAL, workers=2, progress=False)
    return Tokenizer(vocab, merges, SPECIAL)


@pytest.mark.parametrize("fixture,size", [("corpus.en", 500), ("tinystories_sample.txt", 400)])
def test_fast_trainer_equals_reference(data, fixture, size):
    path = data / "cs336-a1-fixtures" / fixture
    fast = train_bpe(path, size, SPECIAL, workers=2, progress=False)
    ref = train_bpe_reference(path.read_text(), size, SPECIAL)
    assert fast == ref


@pytest.mark.parametrize("fixture,size", [("corpus.en", 1000), ("tinystories_sample.txt", 800)])
def test_compiled_core_and_python_fallback_give_identical_merges(data, fixture, size):
    from lm import bpe

    if bpe._bpe_core is None:
        pytest.fail("the compiled BPE core was not built (make setup builds it with g++)")
    counts = pretokenize_file(data / "cs336-a1-fixtures" / fixture, SPECIAL, workers=1)
    compiled = bpe.merge_pretokens(counts, size, SPECIAL, progress=False, compiled=True)
    python = bpe.merge_pretokens(counts, size, SPECIAL, progress=False, compiled=False)
    assert compiled == python and len(compiled[1]) == size - 257
    handed_over = dict(counts)  # consume: the core empties the counts it copied, same merges
    assert bpe.merge_pretokens(handed_over, size, SPECIAL, progress=False, consume=True) == compiled
    assert handed_over == {}


def test_compiled_core_breaks_ties_and_overlaps_as_the_specification(data):
    """Equal counts everywhere, repeated bytes ("aaaa": overlapping pairs), non-ASCII bytes above 0x7f."""
    from lm import bpe

    text = "aaaa ab ba st ts öö ää aaaa é" * 3
    counts = count_pretokens(text, [])
    ref = train_bpe_reference(text, 256 + 12, [])
    assert bpe.merge_pretokens(counts, 256 + 12, [], progress=False, compiled=True) == ref


def _compiled_pretokenizer():
    from lm import pretokenize

    if pretokenize._pretokenize is None:
        pytest.fail("the compiled pretokenizer was not built (make setup builds it with g++)")


@pytest.mark.parametrize("fixture", ["corpus.en", "tinystories_sample.txt", "address.txt", "german.txt"])
def test_compiled_pretokenizer_counts_equal_the_regex(data, fixture):
    _compiled_pretokenizer()
    raw = (data / "cs336-a1-fixtures" / fixture).read_bytes()
    expected = count_pretokens(raw.decode("utf-8", errors="replace"), SPECIAL)
    assert count_pretokens_utf8(raw, SPECIAL, compiled=True) == expected


def test_compiled_pretokenizer_on_every_alternative_of_the_pattern():
    """Random strings over the characters where the GPT-2 pattern's alternatives meet: contractions,
    whitespace runs of every kind before letters, digits and symbols, non-Latin letters and digits,
    combining marks, emoji, specials that overlap; then bytes that are not UTF-8."""
    _compiled_pretokenizer()
    rng = random.Random(0)
    alphabet = list(" \t\n\r\x0b\x0c\x1c\x85\xa0\u2003\u3000'sdmtlverSabc1²٣Ⅻ.!?-é世🙂\u200b\u0301")
    alphabet += ["<|endoftext|>", "<|end", "'ll", "'re", "'ve"]
    for n in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
        specials = SPECIAL if n % 2 else ["<|endoftext|>", "<|end", "of"]
        assert count_pretokens_utf8(text.encode(), specials, compiled=True) == count_pretokens(text, specials), text
    assert count_pretokens_utf8(HARD_TEXT.encode(), SPECIAL, compiled=True) == count_pretokens(HARD_TEXT, SPECIAL)
    invalid = b"ab\xff cd \xe2\x82 ef\xed\xa0\x80 gh \xc0\xaf \xf4\x90\x80\x80<|endoftext|>x"
    expected = count_pretokens(invalid.decode("utf-8", errors="replace"), SPECIAL)
    assert count_pretokens_utf8(invalid, SPECIAL, compiled=True) == expected


def test_vocab_layout_and_specials_never_merged(data):
    vocab, merges = train_bpe(data / "cs336-a1-fixtures" / "tinystories_sample.txt", 300, SPECIAL, progress=False)
    assert len(vocab) == 300 and [vocab[i] for i in range(256)] == [bytes([i]) for i in range(256)]
    assert vocab[256] == b"<|endoftext|>"
    assert all(b"<|" not in a + b for a, b in merges)
    assert [vocab[257 + i] for i in range(len(merges))] == [a + b for a, b in merges]


def test_tie_break_prefers_lexicographically_greater_pair():
    # every pair occurs once: the greatest byte pair ("s", "t")... wins ties
    vocab, merges = train_bpe_reference("ab st", 257 + 1, [])
    assert merges[0] == (b"s", b"t")


def test_chunk_boundaries_sit_on_special_tokens(data, tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("<|endoftext|>".join([f"story number {i} " * 50 for i in range(200)]))
    bounds = find_chunk_boundaries(p, 8, b"<|endoftext|>")
    raw = p.read_bytes()
    assert bounds[0] == 0 and bounds[-1] == len(raw)
    assert all(raw[b:].startswith(b"<|endoftext|>") for b in bounds[1:-1])


def test_gpt2_matches_hf_tokenizers_and_reference(gpt2, data):
    d = data / "cs336-a1-fixtures"
    from tokenizers import decoders, models, pre_tokenizers

    hf = HFTokenizer(models.BPE.from_file(str(d / "gpt2_vocab.json"), str(d / "gpt2_merges.txt")))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    for name in ["corpus.en", "tinystories_sample.txt", "german.txt", "address.txt"]:
        text = (d / name).read_text().replace("<|endoftext|>", "")
        assert gpt2.encode(text) == hf.encode(text).ids == gpt2.encode_reference(text), name


def test_backend_equals_reference_on_hard_text(gpt2, trained, data):
    texts = [
        HARD_TEXT,
        (data / "tinystories-val-sample" / "tinystories_val.txt").read_text()[:20000],
        (data / "lingua-langid-testdata" / "sentences" / "zh.txt").read_text()[:5000],
    ]
    for tok in (gpt2, trained):
        for t in texts:
            ids = tok.encode(t)
            assert ids == tok.encode_reference(t)
            assert tok.decode(ids) == t


def test_overlapping_special_tokens_longest_first(data):
    d = data / "cs336-a1-fixtures"
    tok = Tokenizer.from_files(
        d / "gpt2_vocab.json", d / "gpt2_merges.txt", ["<|endoftext|>", "<|endoftext|><|endoftext|>"]
    )
    ids = tok.encode("a<|endoftext|><|endoftext|>b<|endoftext|>")
    assert ids == tok.encode_reference("a<|endoftext|><|endoftext|>b<|endoftext|>")
    assert ids[1] == tok.special_ids["<|endoftext|><|endoftext|>"] and ids[3] == 50256


def test_decode_replaces_invalid_utf8(gpt2):
    partial = gpt2.encode("🙂")[:1]
    assert gpt2.decode(partial) == "\ufffd"


def test_save_load_and_exported_tokenizer_json(trained, tmp_path, data):
    trained.save(tmp_path)
    again = Tokenizer.from_dir(tmp_path)
    assert again.vocab == trained.vocab and again.merges == trained.merges
    hf = HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    text = HARD_TEXT + (data / "tinystories-val-sample" / "tinystories_val.txt").read_text()[:5000]
    assert hf.encode(text).ids == trained.encode(text)
    assert hf.decode(trained.encode(text), skip_special_tokens=False) == text
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    assert fast(text)["input_ids"] == trained.encode(text)


def test_encode_iterable_equals_encode(gpt2, data):
    text = (data / "tinystories-val-sample" / "tinystories_val.txt").read_text()[:200_000] + HARD_TEXT
    assert list(gpt2.encode_iterable(io.StringIO(text))) == gpt2.encode(text)
    # chunks that cut through a special token and through whitespace runs
    chunks = [text[i : i + 7] for i in range(0, len(text), 7)]
    assert list(gpt2.encode_iterable(chunks)) == gpt2.encode(text)


def test_encode_iterable_memory_is_flat(gpt2, data, tmp_path):
    big = tmp_path / "big.txt"
    block = (data / "tinystories-val-sample" / "tinystories_val.txt").read_text()
    with open(big, "w") as f:
        for _ in range(10):  # ~8 MB: 5x the allowed peak
            f.write(block)
    tracemalloc.start()
    n = 0
    with open(big) as f:
        for _ in gpt2.encode_iterable(f):
            n += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n > 1_600_000
    assert peak < 5_000_000, f"peak {peak / 1e6:.1f} MB while streaming a {big.stat().st_size / 1e6:.0f} MB file"
