"""Bad input is counted, named and skipped, never fatal; config errors are caught at load."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from filters.document import Stats
from filters.readers import expand_inputs, read_documents
from flows.config import ConfigError, load_config


def _good_lines(data: Path) -> list[str]:
    return [
        line for f in sorted((data / "cc-en-jsonl").iterdir()) for line in f.read_text().splitlines() if line.strip()
    ]


def _read(path: Path) -> tuple[list, dict]:
    stats = Stats()
    docs = list(read_documents(path, stats))
    return docs, stats.to_dict().get("read", {})


def test_lone_surrogate_is_replaced_and_counted(tmp_path, data):
    good = _good_lines(data)[:3]
    f = tmp_path / "s.jsonl"
    f.write_text("\n".join(good + ['{"id": "bad", "text": "caf\\ud800 ' + "word " * 60 + '"}']) + "\n")
    docs, read = _read(f)
    assert len(docs) == 4 and read["surrogates_replaced"] == 1
    bad = next(d for d in docs if d.id == "bad")
    assert "\ufffd" in bad.text and bad.text.encode("utf-8")  # valid UTF-8 now: fasttext and Parquet take it


def test_non_string_text_is_counted_per_record(tmp_path):
    f = tmp_path / "ints.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": [1, 2]}), f)
    docs, read = _read(f)
    assert docs == [] and read["skipped_not_text"] == 2
    j = tmp_path / "mixed.jsonl"
    j.write_text('{"text": 5}\n{"text": ["a"]}\n{"text": "fine text here"}\n')
    docs, read = _read(j)
    assert [d.text for d in docs] == ["fine text here"] and read["skipped_not_text"] == 2


def test_truncated_streams_are_counted_not_silent(tmp_path, data):
    payload = ("\n".join(_good_lines(data)) + "\n").encode()
    n_docs = payload.count(b"\n")
    whole = tmp_path / "whole.jsonl.zst"
    whole.write_bytes(zstandard.ZstdCompressor().compress(payload))
    docs, read = _read(whole)
    assert len(docs) == n_docs and "files_corrupt" not in read
    cut = tmp_path / "cut.jsonl.zst"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    docs, read = _read(cut)
    assert read["files_corrupt"] == 1 and len(docs) < n_docs
    gz = tmp_path / "cut.jsonl.gz"
    gz.write_bytes(gzip.compress(payload)[:-40])
    docs, read = _read(gz)
    assert read["files_corrupt"] == 1 and len(docs) < n_docs


def test_truncated_warc_record_is_counted_and_dropped(tmp_path, data):
    src = data / "web-warc-samples" / "dolma-wget-sample-0000.warc.gz"
    full, read_full = _read(src)
    assert "skipped_truncated_record" not in read_full
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size * 2 // 3])
    docs, read = _read(cut)
    assert read["skipped_truncated_record"] == 1
    assert [d.text for d in docs] == [
        d.text for d in full[: len(docs)]
    ]  # the complete records before it are kept whole


def test_binary_file_warns_once_per_kind_not_per_line(tmp_path, caplog):
    import random

    rng = random.Random(0)
    f = tmp_path / "blob.jsonl"
    f.write_bytes(bytes(rng.randrange(256) for _ in range(200_000)))
    with caplog.at_level(logging.WARNING, logger="lmforge.filters.readers"):
        docs, read = _read(f)
    assert docs == [] and read["skipped_bad_json"] > 100
    assert len(caplog.records) <= 3, [r.getMessage()[:80] for r in caplog.records]
    assert str(f) in caplog.records[0].getMessage()


def test_unsupported_files_are_listed_for_the_stats(tmp_path, data):
    (tmp_path / "notes.wat").write_text("x")
    (tmp_path / "a.jsonl").write_text(_good_lines(data)[0] + "\n")
    skipped: list[Path] = []
    assert expand_inputs([str(tmp_path)], skipped) == [tmp_path / "a.jsonl"]
    assert skipped == [tmp_path / "notes.wat"]


@pytest.mark.slow
def test_mixed_directory_keeps_every_good_document(prefect_harness, lmforge_home, tmp_path, data):
    """One bad file of each kind beside good ones: the good documents all come out."""
    from filters.config import CleanConfig
    from flows.clean_data import clean_data

    d = tmp_path / "mixed"
    d.mkdir()
    good = _good_lines(data)
    (d / "good.jsonl").write_text("\n".join(good) + "\n")
    (d / "surrogate.jsonl").write_text('{"id": "s", "text": "\\ud800"}\n')
    pq.write_table(pa.table({"text": [1, 2, 3]}), d / "ints.parquet")
    (d / "cut.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(("\n".join(good) + "\n").encode())[:200])
    (d / "blob.jsonl").write_bytes(bytes(range(256)) * 100)
    (d / "README.wat").write_text("not a document")
    cfg = CleanConfig(
        inputs=[str(d)],
        language={"enabled": False},
        quality={"enabled": False},
        repetition={"enabled": False},
        minhash={"enabled": False},
        line_dedup={"enabled": False},
    )
    out = Path(clean_data(cfg))
    stats = json.loads((out / "stats.json").read_text())
    read = stats["read"]
    assert read["files_unsupported"] == 1 and read["files_corrupt"] == 1 and read["skipped_not_text"] == 3
    assert read["surrogates_replaced"] == 1
    assert stats["output"]["docs_out"] >= len(good)  # every good document (and the repaired one) came through


@pytest.mark.slow
def test_an_input_with_nothing_usable_fails_loudly(prefect_harness, lmforge_home, tmp_path):
    from filters.config import CleanConfig
    from flows.clean_data import EmptyResult, clean_data

    f = tmp_path / "empty.jsonl"
    f.write_text('{"text": 1}\n')
    with pytest.raises(EmptyResult, match="no document survived"):
        clean_data(CleanConfig(inputs=[str(f)]))
    assert not list((lmforge_home / "artifacts").glob("clean-data/*"))


# --- config errors at load -----------------------------------------------------------------
def test_yaml_errors_name_the_file_and_line(tmp_path):
    from filters.config import CleanConfig

    bad = tmp_path / "bad.yaml"
    bad.write_text("inputs: [a]\nquality:\n  min_words: 5\n   max_words: 9\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:4"):
        load_config(CleanConfig, bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="list.yaml.*mapping"):
        load_config(CleanConfig, lst)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(CleanConfig, tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "bad",
    [
        {"quality": {"min_words": -5}},
        {"quality": {"max_words": -1}},
        {"quality": {"min_alpha_words_ratio": 7}},
        {"language": {"languages": ["klingon"]}},
        {"repetition": {"dup_n_grams": [[5, 1.5]]}},
        {"quality": {"min_avg_word_length": 9, "max_avg_word_length": 3}},
    ],
)
def test_thresholds_are_range_checked(bad):
    from filters.config import CleanConfig

    with pytest.raises(ConfigError):
        load_config(CleanConfig, None, inputs=["x"], **bad)


def test_each_stage_reads_its_own_section_of_a_pipeline_file(data):
    from common.configfile import read_yaml
    from common.paths import REPO_ROOT
    from flows.registry import STAGES
    from lm.train import PretrainConfig
    from rl.sft import SFTSettings

    demo = REPO_ROOT / "configs" / "pipeline-demo.yaml"
    data = read_yaml(demo)
    settings = load_config(SFTSettings, demo, sections=list(STAGES["sft"].sections))
    # the file's values, not the defaults (SFTSettings' max_steps default is 200)
    assert settings.max_steps == data["post_training"]["sft"]["max_steps"] != SFTSettings().max_steps
    assert (
        load_config(PretrainConfig, demo, sections=["pretrain"]).model.d_model
        == data["pretrain"]["model"]["d_model"]
        != PretrainConfig().model.d_model
    )


def test_a_post_training_branch_with_no_model_to_tune_fails_at_load(tmp_path):
    """The branch's small model is the file's recipe (no default in code): without it or a checkpoint, one
    line naming the section, before any work."""
    import yaml

    from common.configfile import read_yaml
    from common.paths import REPO_ROOT
    from flows.pipeline import PipelineConfig

    config = read_yaml(REPO_ROOT / "configs" / "pipeline-demo.yaml")
    config["post_training"] = {"task": "addition"}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"post_training: .*give a `checkpoint` to tune, or `pretrain:` settings"):
        load_config(PipelineConfig, path)


def test_records_of_any_size_pass_the_preflight_whole(tmp_path, data):
    """A first record over the old 64 KB sniff (a long article) and one 50 MB record alone are valid input."""
    from filters.preflight import preflight_inputs

    long = tmp_path / "long.jsonl"
    long.write_text(json.dumps({"id": "a", "text": "word " * 40_000}) + "\n" + "\n".join(_good_lines(data)[:5]) + "\n")
    book = tmp_path / "book" / "one.jsonl"
    book.parent.mkdir()
    book.write_text(json.dumps({"id": "book", "text": "All work and no play. " * 2_400_000}) + "\n")
    assert book.stat().st_size > 50_000_000
    for path in (long, book.parent):
        files, warnings = preflight_inputs([str(path)])
        assert files and warnings == []
    docs, _ = _read(long)
    assert len(docs[0].text) == 200_000 and len(docs) == 6
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "x", "text": "cut here' + "y" * 100_000 + "\n")
    with pytest.raises(Exception, match="line 1 is not JSON"):
        preflight_inputs([str(broken)])


def test_text_in_another_encoding_is_read_not_called_binary(tmp_path, data):
    """One stray Latin-1 byte in line 31, or a Latin-1 French file: text, read with replacement and counted,
    and the warning says so; only content (NUL bytes, control characters) makes a file binary."""
    from filters.preflight import preflight_inputs

    lines = (_good_lines(data) * 10)[:200]
    stray = tmp_path / "stray.jsonl"
    stray.write_bytes(
        b"\n".join(
            line.encode() if i != 30 else json.dumps({"id": "e", "text": "caf_ " * 40}).encode().replace(b"_", b"\xe9")
            for i, line in enumerate(lines)
        )
        + b"\n"
    )
    french = tmp_path / "french.txt"
    french.write_bytes(("Le café était très bon, et la soirée fut agréable. " * 30).encode("latin-1"))
    for path in (stray, french):
        files, warnings = preflight_inputs([str(path)])
        assert files == [path], warnings
        # the preflight reads a file's head: the French file is Latin-1 there, the JSONL's byte lies further
        assert len(warnings) == (1 if path == french else 0), warnings
        assert all("is not valid UTF-8" in w and "read with the bad bytes replaced" in w for w in warnings)
        assert not any("skipped" in w for w in warnings)
        docs, read = _read(path)
        assert len(docs) == (len(lines) if path == stray else 1) and read["invalid_utf8_replaced"] == 1
    binary = tmp_path / "image.txt"
    binary.write_bytes(bytes(range(1, 32)) * 200)  # no NUL byte, control characters throughout
    with pytest.raises(Exception, match="holds binary data, not text"):
        preflight_inputs([str(binary)])


def test_zero_workers_is_refused_at_the_command_line(tmp_path):
    import subprocess
    import sys

    r = subprocess.run(
        [str(Path(sys.executable).parent / "lmforge"), "clean-data", "--workers", "0", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # the settings model's bound (the flag is generated from it), said before any work
    assert r.returncode == 2 and "workers: Input should be greater than or equal to 1" in r.stderr, r.stderr


@pytest.mark.parametrize("encoding", ["cp1252", "auto"])
def test_an_encoding_setting_decodes_windows_1252_text(tmp_path, data, encoding):
    """French sentences saved by a Windows editor (cp1252): named, or guessed by charset-normalizer, they read
    as written, with no replacement."""
    from filters.config import CleanConfig
    from filters.readers import read_documents

    text = (data / "lingua-langid-testdata" / "sentences" / "fr.txt").read_text()[:20_000].rsplit("\n", 1)[0]
    text = text.encode("cp1252", errors="ignore").decode("cp1252")  # the sample holds a few C1 controls
    (tmp_path / "french.txt").write_bytes(text.encode("cp1252"))
    (tmp_path / "french.jsonl").write_bytes((json.dumps({"text": text}, ensure_ascii=False) + "\n").encode("cp1252"))
    cfg = CleanConfig(inputs=[str(tmp_path)], encoding=encoding)
    for name in ("french.txt", "french.jsonl"):
        stats = Stats()
        docs = list(read_documents(tmp_path / name, stats, encoding=cfg.encoding))
        read = stats.to_dict()["read"]
        assert [d.text for d in docs] == [text] and not [k for k in read if k.endswith("_replaced")], read
    with pytest.raises(ValueError, match="unknown encoding 'klingon'"):
        CleanConfig(inputs=[str(tmp_path)], encoding="klingon")


def _blocks_of_the_whole_text(path: Path) -> list[tuple[str, str]]:
    """The specification of blank-line splitting: the whole file decoded, CRLF normalised, split on "\\n\\n";
    a block's id is `name:<the line it starts at>`, checked against the file's lines."""
    text = path.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
    lines = text.split("\n")
    out, line = [], 1
    for part in text.split("\n\n"):
        block = part.strip("\n")
        if block.strip():
            first = line + len(part) - len(part.lstrip("\n"))
            assert lines[first - 1] == block.split("\n")[0]
            out.append((f"{path.name}:{first}", block))
        line += part.count("\n") + 2
    return out


def _odd_text(tmp_path: Path) -> Path:
    odd = tmp_path / "odd.txt"
    odd.write_bytes(b"\r\n\r\nfirst line\r\nsecond\r\n\r\n\r\n\r\n  \r\n\r\nthird\n\n\n\nfourth \n \nstill fourth\n\n")
    return odd


def test_text_blocks_are_streamed_with_the_documents_and_ids_of_splitting_the_whole_text(tmp_path, data):
    """Blank-line blocks read a line at a time give what splitting the whole decoded text gives, on the
    shared data's text (TinyStories, Gutenberg, Shakespeare) and on CRLF files with runs of blank lines and
    whitespace-only blocks; a text file far above `max_doc_chars` is read block by block (it was skipped
    whole), and a block above it is counted and skipped alone."""
    odd = _odd_text(tmp_path)
    files = [
        data / "tinystories-train-sample" / "tiny_stories.txt",
        data / "tinyshakespeare" / "input.txt",
        *sorted((data / "nltk-gutenberg").glob("*.txt"))[:3],
        odd,
    ]
    for path in files:
        stats = Stats()
        docs = list(read_documents(path, stats, split_blank_lines=True))
        assert [(d.id, d.text) for d in docs] == _blocks_of_the_whole_text(path), path
    assert [(d.id, d.text) for d in read_documents(odd, Stats(), split_blank_lines=True)] == [
        ("odd.txt:3", "first line\nsecond"),
        ("odd.txt:10", "third"),
        ("odd.txt:14", "fourth \n \nstill fourth"),
    ]

    big = data / "tinystories-train-sample" / "tiny_stories.txt"  # 944 KB, blocks of < 2,000 characters
    long_block = tmp_path / "long.txt"
    long_block.write_text("short story one.\n\n" + "word " * 5_000 + "\n\nshort story two.\n")
    stats = Stats()
    docs = list(read_documents(big, stats, max_chars=10_000, split_blank_lines=True))
    assert len(docs) == len(_blocks_of_the_whole_text(big)) > 1000
    docs = list(read_documents(long_block, stats, max_chars=10_000, split_blank_lines=True))
    assert [d.id for d in docs] == ["long.txt:1", "long.txt:5"]
    assert stats.to_dict()["read"]["skipped_too_large"] == 1


def test_a_large_file_cut_in_pieces_reads_as_the_whole_file(tmp_path, data):
    """JSONL (records without ids, a 300 KB record among them, CRLF line ends) and blank-line text (the
    shared TinyStories sample, a CRLF file with runs of blank lines) cut at ~64 KB: no record lost, split or
    read twice, the same ids (line numbers) and texts as reading each file whole, each file counted once."""
    from filters.partitions import split_file

    stories = [b for b in (data / "tinystories-train-sample" / "tiny_stories.txt").read_text().split("\n\n") if b]
    jsonl = tmp_path / "stories.jsonl"
    records = [json.dumps({"text": t}) for t in stories]
    records.insert(150, json.dumps({"text": "long " * 60_000}))
    jsonl.write_bytes("\r\n".join(records).encode() + b"\r\n")
    odd = tmp_path / "odd-many.txt"
    odd.write_bytes(_odd_text(tmp_path).read_bytes() * 3000)
    cases = [(jsonl, False), (data / "tinystories-train-sample" / "tiny_stories.txt", True), (odd, True)]
    for path, blocks in cases:
        whole_stats, cut_stats = Stats(), Stats()
        whole = [(d.id, d.text) for d in read_documents(path, whole_stats, split_blank_lines=True)]
        pieces = split_file(path, 64 * 1024, blocks=blocks)
        assert len(pieces) >= max(2, path.stat().st_size // (64 * 1024) - 5), (path, len(pieces))
        cut = [
            (d.id, d.text)
            for p in pieces
            for d in read_documents(
                path, cut_stats, split_blank_lines=True, start=p.start, end=p.end, first_line=p.first_line
            )
        ]
        assert cut == whole and len(whole) > 300, path
        assert cut_stats.to_dict()["read"]["files"] == 1


def test_utf16_text_split_on_blank_lines_gives_the_streamed_utf8_documents(tmp_path, data):
    """A UTF-16 file (its newline is two bytes, so it is decoded whole, not streamed) gives the same blocks
    with the same line ids as the same text in UTF-8 (read a line at a time): runs of blank lines, CRLF."""
    lines = (data / "tinystories-val-sample" / "tinystories_val.txt").read_text().splitlines()[:60]
    text = "\n\n" + "\n".join(lines).replace("\n\n", "\n\n\n", 3) + "\n"
    (tmp_path / "utf8.txt").write_text(text, encoding="utf-8")
    (tmp_path / "utf16.txt").write_text(text.replace("\n", "\r\n"), encoding="utf-16", newline="")
    read = {
        enc: list(read_documents(tmp_path / f"{enc}.txt", Stats(), split_blank_lines=True, encoding=enc))
        for enc in ("utf8", "utf16")
    }
    assert len(read["utf8"]) > 5
    assert [(d.text, d.id.split(":")[1]) for d in read["utf16"]] == [(d.text, d.id.split(":")[1]) for d in read["utf8"]]
