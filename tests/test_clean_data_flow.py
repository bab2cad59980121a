"""The clean-data flow end to end on real data: artifact, cache hits, CLI, a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from filters.config import CleanConfig
from flows.config import ConfigError, load_config

# end to end: Prefect flows, subprocesses, servers (make test-fast skips these)
pytestmark = pytest.mark.slow


def _task_run_count() -> int:
    """Task runs recorded so far, once the records of finished runs have all landed (they arrive asynchronously)."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        counts = [len(client.read_task_runs(limit=200))]
        while len(counts) < 2 or counts[-1] != counts[-2]:
            time.sleep(1.0)
            counts.append(len(client.read_task_runs(limit=200)))
        return counts[-1]


def test_flow_builds_then_hits_cache_then_recomputes_on_change(prefect_harness, lmforge_home, data):
    from flows.clean_data import clean_data
    from flows.runners import RunnerConfig

    cfg = CleanConfig(
        inputs=[str(data / "cc-en-jsonl"), str(data / "web-warc-samples" / "dolma-wget-sample-0000.warc.gz")]
    )
    runner = RunnerConfig(kind="thread")
    out = Path(clean_data(cfg, runner))
    manifest = json.loads((out / "manifest.json").read_text())
    stats = json.loads((out / "stats.json").read_text())
    table = pq.read_table(sorted(out.glob("shard-*.parquet")))
    assert {"id", "text", "source", "lang", "lang_score"} <= set(table.column_names)
    assert table.num_rows == stats["output"]["docs_out"] == manifest["summary"]["documents"] > 10
    ids = set(table.column("id").to_pylist())
    src_ids = {json.loads(l)["id"] for f in (data / "cc-en-jsonl").iterdir() for l in f.read_text().splitlines()}
    assert ids & src_ids, "JSONL ids survive to the output"
    assert stats["read"]["files"] == 3 and stats["language"]["docs_in"] == stats["read"]["docs_out"]

    before = _task_run_count()
    assert Path(clean_data(cfg, runner)) == out
    assert _task_run_count() == before, "a cache hit runs no task"
    assert json.loads((out / "manifest.json").read_text())["created"] == manifest["created"]

    changed = cfg.model_copy(update={"quality": cfg.quality.model_copy(update={"min_words": 200})})
    out2 = Path(clean_data(changed, runner))
    assert (
        out2 != out
        and json.loads((out2 / "stats.json").read_text())["output"]["docs_out"] <= stats["output"]["docs_out"]
    )


def _filter_task_runs(flow_run_id) -> list[str]:
    """The names of one flow run's filter tasks."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    _task_run_count()  # until the records have landed
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return [r.name for r in runs if r.name.startswith("filter ")]


def test_many_small_files_are_a_few_partitions_with_the_same_output(prefect_harness, lmforge_home, data, tmp_path):
    """2,000 one-story files (~370 KB in all) against the same stories in 4 files and in one: tasks
    follow the bytes (`partition_bytes`), not the files (small files grouped, a large one cut in
    pieces), and the documents that come out are the same."""
    from flows.clean_data import clean_data
    from flows.runners import RunnerConfig

    stories = [b for b in (data / "tinystories-val-sample" / "tinystories_val.txt").read_text().split("\n\n") if b]
    stories = stories[:2000]
    many, few, one = tmp_path / "many", tmp_path / "few", tmp_path / "one"
    for folder in (many, few, one):
        folder.mkdir()
    for i, story in enumerate(stories):
        (many / f"story-{i:05d}.txt").write_text(story)
    for k in range(4):
        (few / f"stories-{k}.txt").write_text("\n\n".join(stories[k * 500 : (k + 1) * 500]))
    (one / "stories.txt").write_text("\n\n".join(stories))
    partition_bytes = 128 * 1024
    runner = RunnerConfig(kind="thread")
    texts, filters = {}, {}
    for name, folder in (("many", many), ("few", few), ("one", one)):
        cfg = CleanConfig(
            inputs=[str(folder)],
            split_text_on_blank_lines=True,
            quality={"min_words": 20},
            partition_bytes=partition_bytes,
        )
        state = clean_data(cfg, runner, return_state=True)
        out = Path(state.result())
        filters[name] = _filter_task_runs(state.state_details.flow_run_id)
        texts[name] = pq.read_table(sorted(out.glob("shard-*.parquet")), columns=["text"]).column("text").to_pylist()
        stats = json.loads((out / "stats.json").read_text())
        assert stats["read"]["files"] == {"many": 2000, "few": 4, "one": 1}[name]
    total = sum(f.stat().st_size for f in many.iterdir())
    expected_many = -(-total // partition_bytes)  # ceil: files are whole, so at most one more
    assert expected_many <= len(filters["many"]) <= expected_many + 1, sorted(filters["many"])
    assert len(filters["few"]) == 4, sorted(filters["few"])  # 93 KB each: two do not fit in 128 KB
    assert expected_many <= len(filters["one"]) <= expected_many + 1, sorted(filters["one"])  # cut in pieces
    assert len(texts["many"]) > 1000 and texts["many"] == texts["few"] == texts["one"]


def test_invalid_config_fails_at_load(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("inputs: [x]\nlanguage: {threshold: 2}\nquality: {min_words: 10, max_words: 5}\n")
    with pytest.raises(ConfigError) as e:
        load_config(CleanConfig, bad)
    assert "language.threshold" in str(e.value) and "bad.yaml" in str(e.value)
    with pytest.raises(ConfigError, match="typo_field"):
        load_config(CleanConfig, None, inputs=["x"], typo_field=1)


def test_cli_missing_input_fails_fast(lmforge_home, tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "flows.cli", "clean-data", str(tmp_path / "missing.jsonl")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "matches no file" in r.stderr


def test_cli_prints_artifact_dir_last(lmforge_home, data):
    r = subprocess.run(
        [sys.executable, "-m", "flows.cli", "clean-data", str(data / "cc-en-jsonl"), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PREFECT_LOGGING_LEVEL": "INFO"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = Path(r.stdout.strip().splitlines()[-1])
    assert (out / "manifest.json").is_file() and "minhash_dedup" in r.stderr
    # no server: one temporary Prefect API for the run, shared by the worker processes
    assert r.stderr.count("starting a temporary Prefect server") == 1 and r.stderr.count("Task run '") >= 2
    assert "filter: 2 input files in 1 partition " in r.stderr  # 177 KB: under partition_bytes


@pytest.mark.slow
def test_deployment_run_against_a_real_server(tmp_path, lmforge_home, data):
    """`lmforge server start`, `lmforge serve`, then Prefect's own `prefect deployment run --watch`:
    a run completes and publishes."""
    # its own PREFECT_HOME, not the session's `prefect_server`: `lmforge serve` there once failed
    # its flow run within a second in CI (cause not captured); isolated, it never has
    bin_dir = Path(sys.executable).parent
    env = {
        **{k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"},
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    lmforge = lambda *args, **kw: subprocess.run(  # noqa: E731
        [str(bin_dir / "lmforge"), *args], env=env, capture_output=True, text=True, timeout=300, **kw
    )
    started = lmforge("server", "start")
    assert started.returncode == 0, started.stderr
    env["PREFECT_API_URL"] = started.stdout.strip().splitlines()[-1]
    serve = None
    try:
        serve = subprocess.Popen(
            [str(bin_dir / "lmforge"), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(60):  # wait until the deployment is registered
            r = subprocess.run(
                [str(bin_dir / "prefect"), "deployment", "inspect", "clean-data/default"], env=env, capture_output=True
            )
            if r.returncode == 0:
                break
            time.sleep(1)

        def deployment_run(inputs: list[str]) -> subprocess.CompletedProcess:
            params = json.dumps({"config": {"inputs": inputs}})
            return subprocess.run(
                [str(bin_dir / "prefect"), "deployment", "run", "clean-data/default", "--params", params, "--watch"],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )

        r = deployment_run([str(data / "cc-en-jsonl")])
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        assert "Completed" in r.stdout
        finished = list((lmforge_home / "artifacts" / "clean-data").glob("*/manifest.json"))
        assert len(finished) == 1

    finally:
        if serve is not None:
            serve.terminate()
            try:
                serve.wait(timeout=20)
            except subprocess.TimeoutExpired:
                serve.kill()
        lmforge("server", "stop")


def test_serve_without_server_fails_fast(tmp_path):
    env = {**os.environ, "PREFECT_HOME": str(tmp_path), "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    r = subprocess.run(
        [str(Path(sys.executable).parent / "lmforge"), "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and "is not answering" in r.stderr and "lmforge server start" in r.stderr
