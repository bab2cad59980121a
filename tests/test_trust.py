"""Results you can trust: code-aware keys, verified hits, safe gc, crash-safe resume."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
from prefect import flow
from typer.testing import CliRunner

from filters.config import CleanConfig
from flows.fingerprint import code_fingerprint
from flows.stage import run_stage
from flows.store import MANIFEST, ArtifactStore, StoreError, check, compute_key


def _write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def test_code_fingerprint_follows_imports_and_ignores_comments_and_docstrings(tmp_path):
    _write(tmp_path, "flows/stage_x.py", "from lm.a import f\n\ndef run():\n    return f()\n")
    _write(tmp_path, "lm/a.py", '"""doc"""\ndef f():\n    from lm import b\n    return b.g()\n')
    _write(tmp_path, "lm/b.py", "def g():\n    return 1  # one\n")
    _write(tmp_path, "lm/unrelated.py", "X = 1\n")
    fp = code_fingerprint("flows.stage_x", tmp_path)
    assert set(fp["modules"]) == {"flows.stage_x", "lm.a", "lm.b"}  # the lazy import counts, unrelated code doesn't

    _write(tmp_path, "lm/b.py", '"""now documented"""\ndef g():\n    # a comment\n    return 1  # changed comment\n')
    _write(tmp_path, "lm/unrelated.py", "X = 2\n")
    assert code_fingerprint("flows.stage_x", tmp_path)["digest"] == fp["digest"]

    _write(tmp_path, "lm/b.py", "def g():\n    return 2\n")  # a helper two imports away changes what runs
    assert code_fingerprint("flows.stage_x", tmp_path)["digest"] != fp["digest"]


def test_fingerprints_taken_in_threads_at_once_agree():
    """A sweep fingerprints its concurrent pretrain sub-flows from threads: CPython 3.11's AST
    constructor once failed under that ("recursion depth mismatch"); parsing is serialised."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        digests = set(pool.map(lambda _: code_fingerprint("flows.scaling_sweep")["digest"], range(32)))
    assert digests == {code_fingerprint("flows.scaling_sweep")["digest"]}


def test_real_stages_fingerprint_their_library_code_and_versions():
    fp = code_fingerprint("flows.pretrain")
    assert {"lm.model", "lm.train", "lm.optim"} <= set(fp["modules"]) and not any(
        m.startswith("filters") for m in fp["modules"]
    )
    assert "torch" in fp["libraries"] and "prefect" not in fp["libraries"]
    assert "datasketch" in code_fingerprint("flows.clean_data")["libraries"]


def test_an_edit_to_a_filters_module_leaves_pretrains_key_alone(tmp_path):
    """The ground floor (common/) is shared without sharing keys: pretrain and clean-data both hash the
    code-point tables they import, and an edit to a module only clean-data imports moves clean-data's key, not
    pretrain's."""
    from common.paths import REPO_ROOT

    for package in ("common", "filters", "lm", "rl", "scaling", "flows"):
        shutil.copytree(REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    before = {stage: code_fingerprint(f"flows.{stage}", tmp_path) for stage in ("pretrain", "clean_data")}
    assert all("common.codepoints" in fp["modules"] for fp in before.values())
    gopher = tmp_path / "filters" / "gopher.py"
    gopher.write_text(gopher.read_text() + "\nEDITED = True\n")
    after = {stage: code_fingerprint(f"flows.{stage}", tmp_path)["digest"] for stage in ("pretrain", "clean_data")}
    assert after["pretrain"] == before["pretrain"]["digest"]
    assert after["clean_data"] != before["clean_data"]["digest"]


def test_settings_that_cannot_change_the_output_stay_out_of_the_key():
    a = CleanConfig(inputs=["x"], workers=1)
    assert compute_key("s", "c", a, []) == compute_key("s", "c", CleanConfig(inputs=["x"], workers=8), [])
    assert compute_key("s", "c", a, []) != compute_key("s", "c", CleanConfig(inputs=["x"], max_doc_chars=10), [])
    assert compute_key("s", "c", a, []) != compute_key("s", "c2", a, [])  # the code fingerprint


BUILDS: list[int] = []


@flow
def _stage_flow(home: str, text: str = "hello") -> str:
    def build(out: Path, work: Path) -> dict:
        BUILDS.append(1)
        (out / "data.txt").write_text(text)
        (out / "sub").mkdir()
        (out / "sub" / "more.bin").write_bytes(b"\0" * 100)
        return {"n": len(BUILDS)}

    return str(
        run_stage(
            "toy", CleanConfig(inputs=[text]), build, store=ArtifactStore(Path(home)), code_root="flows.stage"
        ).path
    )


@pytest.mark.slow
def test_damaged_artifacts_are_rebuilt_never_served(prefect_harness, tmp_path):
    BUILDS.clear()
    home = str(tmp_path)
    out = Path(_stage_flow(home))
    assert Path(_stage_flow(home)) == out and len(BUILDS) == 1  # a verified hit

    (out / "sub" / "more.bin").unlink()  # a file deleted by hand
    assert Path(_stage_flow(home)) == out and len(BUILDS) == 2 and (out / "sub" / "more.bin").is_file()

    (out / "data.txt").write_text("jello")  # same size, other bytes: the sha256 on hit catches it
    assert Path(_stage_flow(home)) == out and len(BUILDS) == 3 and (out / "data.txt").read_text() == "hello"

    (out / MANIFEST).write_text("{not json")
    assert Path(_stage_flow(home)) == out and len(BUILDS) == 4
    assert not check(ArtifactStore(tmp_path).find(out.name))


@pytest.mark.slow
def test_ls_show_gc_verify_survive_a_corrupt_manifest(prefect_harness, tmp_path, monkeypatch):
    from flows.cli import app

    monkeypatch.setenv("LMFORGE_HOME", str(tmp_path))
    good = Path(_stage_flow(str(tmp_path), "good"))
    bad = Path(_stage_flow(str(tmp_path), "bad"))
    (bad / MANIFEST).write_text("{truncated")
    runner = CliRunner()
    r = runner.invoke(app, ["ls"])
    assert r.exit_code == 0 and "damaged" in r.output and good.name in r.output, r.output
    r = runner.invoke(app, ["show", bad.name])
    assert r.exit_code == 0 and "damaged" in r.output, r.output
    r = runner.invoke(app, ["verify"])
    assert r.exit_code == 1 and "ok" in r.output and "damaged" in r.output
    with pytest.raises(StoreError, match="damaged"):
        ArtifactStore(tmp_path).find(bad.name)
    r = runner.invoke(app, ["gc"], input="n\n")  # gc asks first: no removes nothing
    assert r.exit_code == 1 and "would remove" in r.output and "nothing removed" in r.output and bad.exists()
    r = runner.invoke(app, ["gc", "--yes"])
    assert r.exit_code == 0, r.output
    assert not bad.exists() and good.is_dir()


def test_gc_leaves_a_link_in_the_store_and_says_so_instead_of_removing_it_each_run(tmp_path, monkeypatch):
    """A user's symlink beside the artifacts (a pretrain dir linked in by hand) is not an
    artifact: gc never says it removes it, says once per run that it leaves it, and does."""
    from flows.cli import app

    monkeypatch.setenv("LMFORGE_HOME", str(tmp_path))
    store = ArtifactStore(tmp_path)
    with store.building("pretrain", "real", {}) as out:
        (out / "f").write_text("x")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = store.root / "pretrain" / "mine"
    link.symlink_to(elsewhere)
    for _ in range(2):
        r = CliRunner().invoke(app, ["gc", "--yes"])
        assert r.exit_code == 0 and "removing" not in r.output, r.output
        assert "left pretrain/mine: not an artifact" in r.output, r.output
    assert link.is_symlink() and elsewhere.is_dir() and store.get("pretrain", "real") is not None
    assert [a.key for a in store.list()] == ["real"]


def test_gc_skips_what_a_running_stage_holds(tmp_path):
    store = ArtifactStore(tmp_path)
    for key in ("old", "new"):
        with store.building("toy", key, {}) as out:
            (out / "f").write_text(key)
    old = store.get("toy", "old")
    with store.using([old]):  # a stage reading `old` as its input
        assert store.remove(old) is False and old.path.is_dir()
        with store.building("toy", "k3", {}) as out:  # a build in progress: its temp dir is locked
            (out / "half").write_text("x")
            assert store.clean_tmp() == 0 and out.is_dir()
    assert store.remove(old) is True and not old.path.exists()
    leftover = store.root / "tmp" / "toy-dead-12345678"  # a killed run's temp dir: no lock holder
    leftover.mkdir(parents=True)
    assert store.clean_tmp() == 1 and not leftover.exists()


def test_gc_clears_work_dirs_runs_left_and_keeps_resumable_state_unless_asked(tmp_path):
    store = ArtifactStore(tmp_path)
    with store.building("toy", "done", {}) as out:
        (out / "f").write_text("x")
    work = tmp_path / "work"
    for name, content in (
        ("evaluate-empty", None),
        ("toy-done", "stale"),
        ("pretrain-killed", "ckpt"),
        ("toy-run", "x"),
    ):
        (work / name).mkdir(parents=True)
        if content:
            (work / name / "state").write_text(content)
    with store.lock("toy", "run"):  # a stage building now: its work dir is not touched
        removed, kept = store.clean_work()
        assert sorted(n for n, _ in removed) == ["evaluate-empty", "toy-done"]
        assert kept == [("pretrain-killed", 4)] and (work / "toy-run" / "state").is_file()
        assert store.clean_work(resumable=True, dry_run=True)[0] == [("pretrain-killed", 4)]
        assert (work / "pretrain-killed").is_dir()
        assert store.clean_work(resumable=True) == ([("pretrain-killed", 4)], [])
    assert sorted(p.name for p in work.iterdir()) == ["toy-run"]


def test_a_stage_refuses_an_input_removed_before_it_locked_it(tmp_path):
    store = ArtifactStore(tmp_path)
    with store.building("toy", "in", {}) as out:
        (out / "f").write_text("x")
    a = store.get("toy", "in")
    shutil.rmtree(a.path / ".." / "in")
    with pytest.raises(StoreError, match="gone or damaged"):
        with store.using([a]):
            pass


def test_nan_never_reaches_a_manifest(tmp_path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(ValueError):
        with store.building("toy", "nan", {"summary": {"loss": math.nan}}) as out:
            (out / "f").write_text("x")
    assert store.get("toy", "nan") is None


# --- pretraining resume edge cases ---------------------------------------------------------
TINY = dict(
    model={"d_model": 32, "num_layers": 1, "num_heads": 2, "context_length": 32},
    batch_size=4,
    eval_batches=2,
    warmup_steps=2,
    max_steps=6,
    eval_interval=3,
    checkpoint_interval=2,
)


def test_rerun_after_the_final_checkpoint_reports_the_final_loss(token_dir, tmp_path):
    from lm.train import PretrainConfig, train

    cfg = PretrainConfig(**TINY)
    first = train(cfg, token_dir, tmp_path / "run", progress=False)
    again = train(cfg, token_dir, tmp_path / "run", progress=False)  # e.g. killed after the last checkpoint
    assert math.isfinite(again["final_val_loss"]) and again["final_val_loss"] == pytest.approx(
        first["final_val_loss"], abs=1e-6
    )
    assert again["steps"] == first["steps"] == 6


@pytest.mark.parametrize("left", [".old", ".tmp"])
def test_a_kill_between_the_checkpoint_renames_loses_no_progress(token_dir, tmp_path, left, caplog):
    from lm.train import PretrainConfig, train

    cfg = PretrainConfig(**TINY)
    train(cfg, token_dir, tmp_path / "run", stop_at_step=4, progress=False)
    ckpt = tmp_path / "run" / "checkpoint"
    # the instant between `rename(checkpoint, .old)` and `rename(.tmp, checkpoint)`
    os.rename(ckpt, ckpt.with_name("checkpoint" + left))
    with caplog.at_level("INFO", logger="lmforge.lm.train"):
        result = train(cfg, token_dir, tmp_path / "run", progress=False)
    assert "at step 4" in caplog.text  # resumed where it was, not from step 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert result["steps"] == 6 and [r["step"] for r in rows] == [3, 6]


def test_context_length_beyond_the_data_fails_before_training(token_dir):
    from lm.train import PretrainConfig, check_data_fits, open_tokens

    train_tokens, val_tokens, _ = open_tokens(token_dir)
    assert len(val_tokens) < len(train_tokens)
    with pytest.raises(ValueError, match="validation split"):  # trains fine, would fail at its first evaluation
        check_data_fits(
            PretrainConfig(**{**TINY, "model": {**TINY["model"], "context_length": len(val_tokens)}}), token_dir
        )


def test_devices_are_checked_at_load_and_against_the_machine():
    import torch
    from pydantic import ValidationError

    from lm.train import PretrainConfig, pick_device

    with pytest.raises(ValidationError, match="device"):
        PretrainConfig(device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA devices"):
            pick_device("cuda")


@pytest.mark.slow
def test_gc_with_no_keys_keeps_every_branch(prefect_harness, tmp_path, monkeypatch, data):
    """Two tokenizers and a model on each: all four are branches' heads or their lineage, and stay."""
    from flows.cli import app
    from flows.pretrain import pretrain
    from flows.tokenization import tokenize
    from lm.corpus import TokenizeConfig
    from lm.train import PretrainConfig

    monkeypatch.setenv("LMFORGE_HOME", str(tmp_path))
    tiny = PretrainConfig(
        model={"d_model": 32, "num_layers": 1, "num_heads": 1, "context_length": 16},
        batch_size=2,
        max_steps=2,
        eval_interval=2,
        eval_batches=1,
        checkpoint_interval=2,
        sample_prompts=[],
    )
    kept = []
    for vocab in (260, 270):
        tok = tokenize(
            TokenizeConfig(inputs=[str(data / "tinystories-val-sample")], vocab_size=vocab, val_fraction=0.05)
        )
        kept += [Path(tok), Path(pretrain(tok, tiny))]
    r = CliRunner().invoke(app, ["gc", "--yes"])
    assert r.exit_code == 0 and "nothing to remove" in r.output, r.output
    assert all(p.is_dir() for p in kept)
    (kept[0] / "meta.json").write_text("{}")  # a damaged artifact goes, even one a kept model's lineage reaches
    r = CliRunner().invoke(app, ["gc", "--dry-run"])
    assert r.exit_code == 0 and f"would remove tokenize/{kept[0].name} (damaged" in r.output and kept[0].is_dir()


def test_gc_removes_an_older_build_of_a_branch_and_nothing_a_branch_reaches(tmp_path, monkeypatch):
    """A tokenizer rebuilt (same config, newer code): the old build goes; both tokenizer configs
    and a model on each stay."""
    import time

    from flows.cli import app

    monkeypatch.setenv("LMFORGE_HOME", str(tmp_path))
    store = ArtifactStore(tmp_path)

    def publish(stage: str, key: str, config: dict, inputs: list[str] = ()) -> None:
        with store.building(
            stage,
            key,
            {
                "config_key": config,
                "inputs": [{"stage": "toy-tok", "key": k} for k in inputs],
                "raw_inputs": [{"path": "/data/corpus.txt"}],
            },
        ) as out:
            (out / "f").write_text(key)

    publish("toy-tok", "old1", {"vocab": 1})
    time.sleep(1.1)  # manifests' created times are to the second
    publish("toy-tok", "new1", {"vocab": 1})
    publish("toy-tok", "tok2", {"vocab": 2})
    publish("toy-lm", "lm-on-new1", {"d": 8}, ["new1"])
    publish("toy-lm", "lm-on-tok2", {"d": 8}, ["tok2"])  # the same model config on another tokenizer: another branch
    r = CliRunner().invoke(app, ["gc", "--yes"])
    assert r.exit_code == 0 and "removing toy-tok/old1 (unreferenced" in r.output and "1 of 5 artifacts" in r.output, (
        r.output
    )
    assert sorted(a.key for a in store.list()) == ["lm-on-new1", "lm-on-tok2", "new1", "tok2"]


def test_ls_says_whether_bytes_were_verified_and_notices_same_size_overwrites(tmp_path, monkeypatch):
    """A file overwritten with other bytes of the same size passes the size check; `ls` must not call it verified."""
    import time

    from flows.cli import app

    monkeypatch.setenv("LMFORGE_HOME", str(tmp_path))
    store = ArtifactStore(tmp_path)
    with store.building("toy", "k1", {}) as out:
        (out / "data.txt").write_text("hello")
    art = store.get("toy", "k1")
    assert store.verified_status(art) == "not verified since built: lmforge verify k1"
    assert CliRunner().invoke(app, ["verify", "k1"]).exit_code == 0
    assert store.verified_status(art).startswith("verified ")
    time.sleep(0.05)
    (art.path / "data.txt").write_text("jello")  # same size, other bytes
    assert store.verified_status(art).startswith("files written since verified ") and not check(art)
    r = CliRunner().invoke(app, ["show", "k1"])
    assert "files written since verified" in r.output.split("status:")[1].splitlines()[0], r.output
    assert CliRunner().invoke(app, ["verify", "k1"]).exit_code == 1
    assert store.verified_status(art).startswith("failed verification ")
    assert store.remove(art) and not (tmp_path / "verified" / "toy-k1.json").exists()  # the record goes with it
