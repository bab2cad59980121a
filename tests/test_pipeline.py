"""The whole pipeline as one DAG, and the faults it must survive (real processes, real kills)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
import yaml

from filters.config import CleanConfig
from flows.store import ArtifactStore
from lm.corpus import TokenizeConfig

# end to end: Prefect flows, subprocesses, servers (make test-fast skips these)
pytestmark = pytest.mark.slow

LMFORGE = str(Path(sys.executable).parent / "lmforge")


def cli_env(home: Path, api: str | None = None) -> dict:
    """The CLI's environment; `api`: the session's Prefect server (conftest.prefect_server),
    for tests whose subject is not the temporary server a run starts by itself."""
    # the suite quiets Prefect to WARNING; these tests read the CLI's INFO lines
    return {
        **os.environ,
        "LMFORGE_HOME": str(home),
        "PREFECT_LOGGING_LEVEL": "INFO",
        **({"PREFECT_API_URL": api} if api else {}),
    }


TINY_PRETRAIN = {
    "model": {"d_model": 64, "num_layers": 2, "num_heads": 4, "context_length": 64},
    "batch_size": 8,
    "max_steps": 30,
    "warmup_steps": 3,
    "eval_interval": 10,
    "eval_batches": 2,
    "checkpoint_interval": 5,
    "sample_max_tokens": 8,
}


def small_pipeline_config(data: Path, with_sweep: bool) -> dict:
    cfg = {
        "clean_data": {
            "inputs": [str(data / "cc-en-jsonl"), str(data / "tinystories-val-sample")],
            "split_text_on_blank_lines": True,
            "quality": {"min_words": 20},
        },
        "tokenize": {"vocab_size": 400, "val_fraction": 0.05},
        "pretrain": TINY_PRETRAIN,
        "runner": {"kind": "thread"},
    }
    if with_sweep:
        # the sweep's own byte-level tokenizer, as the demo's
        cfg["scaling_sweep"] = {
            "tokenize": {"vocab_size": 257, "val_fraction": 0.05},
            "sweep": {
                "budgets": [1e9, 3e9],  # tiny: a point trains 5-200 steps; the tests check the sweep, not the law
                "sizes": [1e4, 4e4, 1.2e5],
                "head_dim": 16,
                "min_tokens_per_param": 0.0,
                "n_bootstrap": 20,
                "concurrency": 2,
                # the time cap ends the adaptive rounds before their first: the grid alone takes longer
                "adaptive": {"target_interval": 0.01, "max_minutes": 0.001},
                "train": {"model": {"context_length": 32}, "batch_size": 8, "max_steps": 1, "eval_batches": 2},
            },
        }
    return cfg


def _task_runs() -> list[str]:
    """Names of the task runs that did work (not the stand-ins Prefect records for sub-flow calls)."""
    import re

    from prefect import get_client

    subflow_standin = re.compile(r"^(clean-data|tokenize|pretrain|scaling-sweep|grpo)-\d+$")
    with get_client(sync_client=True) as client:
        return sorted(r.name for r in client.read_task_runs(limit=200) if not subflow_standin.match(r.name))


def test_pipeline_runs_every_stage_then_reruns_from_cache(prefect_harness, lmforge_home, data):
    from flows.pipeline import PipelineConfig, pipeline

    cfg = PipelineConfig.model_validate(small_pipeline_config(data, with_sweep=True))
    out = pipeline(cfg)
    assert set(out) == {"clean-data", "tokenize", "pretrain", "sweep-tokenize", "scaling-sweep"}
    pretrained = json.loads((Path(out["pretrain"]) / "manifest.json").read_text())["summary"]
    assert (
        pretrained["final_val_loss"] < 6.0
        and json.loads((Path(out["tokenize"]) / "meta.json").read_text())["train_tokens"] > 10_000
    )
    sweep = Path(out["scaling-sweep"])
    assert (sweep / "isoflop.png").is_file() and json.loads((sweep / "fit.json").read_text())["flops"].startswith(
        "exact: "
    )
    runs = (sweep / "runs.csv").read_text().splitlines()
    summary = json.loads((sweep / "manifest.json").read_text())["summary"]
    assert len(runs) - 1 == summary["points"] >= 4
    assert "max_minutes is 0.001" in summary["laws"][-1] and summary["adaptive"] == [summary["laws"][-1][10:]]
    store = ArtifactStore()
    lineage = [a.stage for a in store.lineage(store.find(Path(out["pretrain"]).name))]
    assert lineage == ["pretrain", "tokenize", "clean-data"]
    assert json.loads((Path(out["sweep-tokenize"]) / "meta.json").read_text())["vocab_size"] == 257

    before = _task_runs()
    assert pipeline(cfg) == out  # all cache hits
    assert _task_runs() == before

    changed = cfg.model_copy(update={"pretrain": cfg.pretrain.model_copy(update={"max_steps": 20})})
    out2 = pipeline(changed)
    assert out2["clean-data"] == out["clean-data"] and out2["tokenize"] == out["tokenize"]
    assert out2["pretrain"] != out["pretrain"] and out2["scaling-sweep"] == out["scaling-sweep"]


def _tokenize_artifact(data: Path, home: Path, api: str) -> str:
    r = subprocess.run(
        [LMFORGE, "tokenize", "-i", str(data / "tinystories-val-sample"), "--vocab-size", "400"],
        capture_output=True,
        text=True,
        timeout=300,
        env=cli_env(home, api),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip().splitlines()[-1]


def test_kill_9_mid_pretrain_then_rerun_resumes_from_checkpoint(lmforge_home, data, tmp_path, prefect_server):
    tok = _tokenize_artifact(data, lmforge_home, prefect_server)
    cfg = tmp_path / "pretrain.yaml"
    cfg.write_text(yaml.safe_dump({**TINY_PRETRAIN, "max_steps": 200, "checkpoint_interval": 10}))
    env = cli_env(lmforge_home, prefect_server)
    proc = subprocess.Popen(
        [LMFORGE, "pretrain", tok, "-c", str(cfg)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    work = lmforge_home / "work"
    deadline = time.time() + 240
    while time.time() < deadline:
        states = list(work.glob("pretrain-*/checkpoint/state.json"))
        if states and json.loads(states[0].read_text())["step"] >= 20:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        raise AssertionError("no checkpoint appeared")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(states[0].read_text())["step"]
    assert not list((lmforge_home / "artifacts").glob("pretrain/*/manifest.json")), "nothing published by a killed run"

    r = subprocess.run([LMFORGE, "pretrain", tok, "-c", str(cfg)], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from" in r.stderr
    out = Path(r.stdout.strip().splitlines()[-1])
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 200 and [m["step"] for m in metrics] == sorted({m["step"] for m in metrics})
    assert killed_at >= 20


@pytest.mark.parametrize("stage", ["clean-data", "tokenize"])
def test_kill_9_mid_data_stage_then_rerun_completes(stage, lmforge_home, data, kill_mid_build, prefect_server):
    src = str(data / "tinystories-train-lowercased")
    web = [str(data / "cc-en-jsonl"), str(data / "web-warc-samples")]
    cmd = {
        "clean-data": [LMFORGE, "clean-data", *web],
        "tokenize": [LMFORGE, "tokenize", "-i", src, "--vocab-size", "2000"],
    }[stage]
    env = cli_env(lmforge_home, prefect_server)
    kill_mid_build(cmd, env, lmforge_home, stage)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    out = Path(r.stdout.strip().splitlines()[-1])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == stage and all((out / f).is_file() for f in manifest["files"])


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs: a disk that fills up mid-stage."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_full_disk_is_a_clear_error_and_publishes_nothing(small_disk, data, prefect_server):
    home = small_disk / "home"
    r = subprocess.run(
        [LMFORGE, "tokenize", "-i", str(data / "tinystories-train-lowercased"), "--vocab-size", "300"],
        capture_output=True,
        text=True,
        timeout=300,
        env=cli_env(home, prefect_server),
    )
    assert r.returncode != 0
    flat = " ".join(r.stderr.split())  # the console wraps long lines
    assert (
        "error: tokenize/" in flat and "no space left on device writing" in flat and "nothing was published" in flat
    ), flat[-1000:]
    assert not list(home.glob("artifacts/tokenize/*")) and not list(home.glob("artifacts/tmp/*"))


def test_two_identical_runs_at_once_build_one_artifact(lmforge_home, data, prefect_server):
    env = cli_env(lmforge_home, prefect_server)
    cmd = [LMFORGE, "tokenize", "-i", str(data / "tinystories-val-sample"), "--vocab-size", "500"]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[0][1][-2000:]
    paths = {o.strip().splitlines()[-1] for o, _ in outs}
    assert len(paths) == 1
    logs = "".join(e for _, e in outs)
    assert logs.count("building tokenize/") == 1 and logs.count("cache hit: tokenize/") == 1
    assert len(list((lmforge_home / "artifacts" / "tokenize").iterdir())) == 1


@pytest.fixture
def dask_scheduler(tmp_path, prefect_harness):
    """A real `dask scheduler` and two `dask worker` processes on loopback, reporting to the test's Prefect API."""
    from prefect.settings import PREFECT_API_URL

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    sched_file = tmp_path / "scheduler.json"
    procs = [
        subprocess.Popen(
            [
                str(bin_dir / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    deadline = time.time() + 180
    while not sched_file.is_file():
        assert time.time() < deadline, "dask scheduler did not start"
        time.sleep(0.2)
    procs += [
        subprocess.Popen(
            [
                str(bin_dir / "dask"),
                "worker",
                "--scheduler-file",
                str(sched_file),
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--no-dashboard",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    address = json.loads(sched_file.read_text())["address"]
    from distributed import Client

    with Client(address, timeout=60) as client:
        client.wait_for_workers(2, timeout=60)
    yield address
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=30)


def test_every_runner_gives_the_same_artifacts(prefect_harness, tmp_path, monkeypatch, data, dask_scheduler):
    """clean-data (every dedup step included) on threads, processes, a Dask LocalCluster and a
    real Dask scheduler with two worker processes; tokenize on threads and Dask: identical. A sweep's
    grid on processes (one device slot per worker, the cores split between them) and on the real scheduler:
    the same points (the same content keys: same configs, data and code), every point's artifact in the
    sweep's own store. (Sweeps on threads, the default, are the pipeline's and the kill -9 test's.)"""
    import pandas as pd

    from flows.clean_data import clean_data
    from flows.runners import RunnerConfig
    from flows.scaling_sweep import scaling_sweep
    from flows.tokenization import tokenize
    from scaling.sweep import SweepConfig

    # partition_docs at its minimum: several dedup buckets, so every step maps over partitions;
    # partition_bytes: the two JSONL files (105 + 72 KB) one partition, the WARC (237 KB) another
    cfg = CleanConfig(
        inputs=[str(data / "cc-en-jsonl"), str(data / "web-warc-samples" / "dolma-wget-sample-0001.warc.gz")],
        partition_docs=1000,
        partition_bytes=200_000,
    )
    # one input file split in two parts: the parts must merge back in order on any runner
    tok_cfg = TokenizeConfig(
        inputs=[str(data / "tinystories-val-sample" / "tinystories_val.txt")],
        vocab_size=400,
        val_fraction=0.05,
        workers=2,
    )
    runners = {
        "thread": RunnerConfig(kind="thread", workers=2),
        "process": RunnerConfig(kind="process", workers=2),
        "dask": RunnerConfig(kind="dask", workers=2),
        "dask-scheduler": RunnerConfig(kind="dask", dask_address=dask_scheduler),
    }
    results = {}
    for name, runner in runners.items():
        monkeypatch.setenv("LMFORGE_HOME", str(tmp_path / name))
        out = Path(clean_data(cfg, runner))
        table = pq.read_table(sorted(out.glob("shard-*.parquet")))
        results[name] = (json.loads((out / "stats.json").read_text()), table.to_pylist(), out.name)
    assert results["thread"] == results["process"] == results["dask"] == results["dask-scheduler"]
    tokenized = {}
    for name in ("thread", "dask"):
        monkeypatch.setenv("LMFORGE_HOME", str(tmp_path / name))
        tok = Path(tokenize(tok_cfg, runner=runners[name]))
        tokenized[name] = ([(tok / f).read_bytes() for f in ("train.bin", "val.bin", "tokenizer/merges.txt")], tok.name)
    assert tokenized["thread"] == tokenized["dask"]
    assert not list(tok.glob("_part-*"))  # the per-part files are merged away

    # the sweep's points, each sweep reading one byte-level tokenize artifact by its directory. Losses are
    # compared loosely: without `deterministic: true` a loaded machine may round one point differently, and
    # a 50-step run amplifies that (a CI run once saw 3.14 vs 3.34 on one point of six)
    monkeypatch.setenv("LMFORGE_HOME", str(tmp_path / "thread"))
    tok = tokenize(TokenizeConfig(inputs=[str(data / "tinystories-val-sample")], vocab_size=257, val_fraction=0.05))
    sweep = small_pipeline_config(data, with_sweep=True)["scaling_sweep"]["sweep"]
    sweep_cfg = SweepConfig.model_validate({**sweep, "adaptive": {"enabled": False}, "n_bootstrap": 0})
    tables = {}
    for kind in ("process", "dask-scheduler"):
        monkeypatch.setenv("LMFORGE_HOME", str(tmp_path / f"sweep-{kind}"))
        out = Path(scaling_sweep(tok, sweep_cfg, runner=runners[kind]))
        tables[kind] = pd.read_csv(out / "runs.csv").sort_values(["compute", "parameters"]).reset_index(drop=True)
        assert tables[kind]["error"].isna().all() and not tables[kind]["reused"].any(), tables[kind]["error"].tolist()
        stored = {p.name for p in (tmp_path / f"sweep-{kind}" / "artifacts" / "pretrain").iterdir()}
        assert set(tables[kind]["pretrain_artifact"]) <= stored
    processes, dask = tables["process"], tables["dask-scheduler"]
    assert len(processes) >= 4
    assert list(processes["pretrain_artifact"]) == list(dask["pretrain_artifact"])
    assert ((processes["loss"] - dask["loss"]).abs() < 0.5).all()


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_building(cmd: list[str], home: Path, stage: str) -> tuple[subprocess.Popen, list[psutil.Process]]:
    """Start a stage in its own session (as a terminal job), wait until it builds, return it and its children."""
    # a terminal job starts with SIGINT handled whatever this test process was left with: an
    # inherited SIG_IGN would make the CLI ignore Ctrl-C by design (a `nohup`/`&` run)
    proc = subprocess.Popen(
        cmd,
        env={**cli_env(home), "PYTHONFAULTHANDLER": "1"},
        preexec_fn=_sigint_default,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 300  # a correctness bound, generous for a slow or busy machine
    while not any((home / "work").glob(f"{stage}-*/done/*.json")):
        assert proc.poll() is None and time.time() < deadline, "the stage never started building"
        time.sleep(0.05)
    time.sleep(1.0)  # let the pool workers start
    children = [
        c
        for c in psutil.Process(proc.pid).children(recursive=True)
        if "flows.processes import watch" not in " ".join(c.cmdline())
    ]
    assert children, "a clean-data build runs a temporary server and pool workers"
    return proc, children


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_a_stage_in_seconds_with_one_line(sig, lmforge_home, data):
    cmd = [LMFORGE, "clean-data", str(data / "cc-en-jsonl"), str(data / "web-warc-samples")]
    proc, children = _start_building(cmd, lmforge_home, "clean-data")
    status = Path(f"/proc/{proc.pid}/status").read_text()
    masks = {k: status.split(k + ":")[1].split()[0] for k in ("SigIgn", "SigCgt")}
    t0 = time.time()
    os.killpg(proc.pid, sig)  # Ctrl-C: the terminal signals the whole job; a supervisor sends SIGTERM
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        # say where it is stuck: every thread's stack (faulthandler, on SIGABRT), and who holds the pipes
        alive = (
            [(p.pid, p.status()) for p in psutil.Process(proc.pid).children(recursive=True)]
            if proc.poll() is None
            else []
        )
        state = (
            f"CLI exit code {proc.poll()}, signal masks {masks}, "
            f"test process SIGINT {signal.getsignal(signal.SIGINT)}; its descendants {alive}"
        )
        if proc.poll() is None:
            proc.send_signal(signal.SIGABRT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired as e:  # the CLI is gone but something still holds its stderr
            err = (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        pytest.fail(f"no exit (or open pipes) 30 s after the signal; {state}\n{err[-6000:]}")
    assert (
        proc.returncode == 128 + sig and time.time() - t0 < 60
    )  # a correctness bound; BENCHMARKS.md has the seconds measured
    assert "interrupted: nothing published; rerun resumes" in err
    assert "Traceback" not in err and "ConnectError" not in err, err[-3000:]
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, [p.cmdline() for p in alive]
    assert not list((lmforge_home / "artifacts").glob("clean-data/*/manifest.json"))


def test_kill_9_of_the_cli_leaves_no_orphans(lmforge_home, data):
    cmd = [LMFORGE, "clean-data", str(data / "cc-en-jsonl"), str(data / "web-warc-samples")]
    proc, children = _start_building(cmd, lmforge_home, "clean-data")
    proc.kill()  # the CLI alone, as `kill -9 PID` does: no handler runs
    proc.wait()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.cmdline() for p in alive]


def test_a_run_that_ignores_sigint_survives_the_scripts_ctrl_c(lmforge_home, data):
    """`cmd &` in a script runs cmd with SIGINT ignored: a Ctrl-C to the script's process group
    must not stop it, nor the temporary Prefect server it depends on."""
    cmd = " ".join([LMFORGE, "clean-data", str(data / "cc-en-jsonl"), str(data / "web-warc-samples")])
    # a non-interactive shell starts `cmd &` with SIGINT ignored, in the script's process group;
    # the script itself ignores SIGINT too, so its exit status is the run's
    script = subprocess.Popen(
        ["bash", "-c", f"trap '' INT; {cmd} & wait $!"],
        env=cli_env(lmforge_home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 300  # a correctness bound, generous for a slow or busy machine
    while not any((lmforge_home / "work").glob("clean-data-*/done/*.json")):
        assert script.poll() is None and time.time() < deadline, "the stage never started building"
        time.sleep(0.05)
    os.killpg(script.pid, signal.SIGINT)  # the script's terminal Ctrl-C
    out, err = script.communicate(timeout=300)
    assert script.returncode == 0, err[-3000:]
    assert list((lmforge_home / "artifacts").glob("clean-data/*/manifest.json")), "the run finished and published"


def test_run_command_takes_any_registered_stage_and_names_what_it_accepts():
    """`lmforge run STAGE`: the registry's generic command; a wrong stage or parameter is one clear line."""
    from typer.testing import CliRunner

    from flows.cli import app

    unknown = CliRunner().invoke(app, ["run", "no-such-stage"])
    assert unknown.exit_code == 2 and "quality-model" in unknown.output and "scaling-sweep" in unknown.output
    bad = CliRunner().invoke(app, ["run", "pretrain", "--param", "bogus=1"])
    assert bad.exit_code == 2 and "tokenize_artifact" in bad.output, bad.output


def test_sweep_records_failed_points_and_stops_only_when_every_point_failed(prefect_harness, lmforge_home, data):
    """A point that fails (here: every point diverges at a huge learning rate) is logged with its
    error instead of raising out of the point; a sweep in which every point failed ends with
    one error that names the first failure."""
    from flows.scaling_sweep import scaling_sweep
    from flows.tokenization import tokenize
    from lm.corpus import TokenizeConfig
    from scaling.sweep import SweepConfig

    tok = tokenize(TokenizeConfig(inputs=[str(data / "tinystories-val-sample")], vocab_size=257, val_fraction=0.05))
    sweep = small_pipeline_config(data, with_sweep=True)["scaling_sweep"]["sweep"]
    cfg = SweepConfig.model_validate(
        {
            **sweep,
            "adaptive": {"enabled": False},
            "train": {**sweep["train"], "lr": 1e6, "max_steps": 3, "log_interval": 1, "eval_interval": 1},
        }
    )
    with pytest.raises(RuntimeError, match=r"all \d+ grid points failed; the first: TrainingDiverged: loss became"):
        scaling_sweep(Path(tok).name, cfg)


def test_kill_9_mid_sweep_then_rerun_reuses_every_finished_point(lmforge_home, data, tmp_path, prefect_server):
    """A sweep killed (SIGKILL to its process group) after some points finished: the rerun
    trains only the others and says how many it reused; the runs are the same points."""
    tok = _tokenize_artifact(data, lmforge_home, prefect_server)
    sweep = small_pipeline_config(data, with_sweep=True)["scaling_sweep"]["sweep"]
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(yaml.safe_dump({**sweep, "adaptive": {"enabled": False}, "n_bootstrap": 0, "concurrency": 1}))
    env = cli_env(lmforge_home, prefect_server)
    cmd = [LMFORGE, "scaling-sweep", tok, "-c", str(cfg), "--runner", "thread"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 300
    while len(list((lmforge_home / "artifacts" / "pretrain").glob("*/manifest.json"))) < 2:
        assert proc.poll() is None and time.time() < deadline, "the sweep never finished two points"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(list((lmforge_home / "artifacts" / "pretrain").glob("*/manifest.json")))
    assert not list((lmforge_home / "artifacts").glob("scaling-sweep/*/manifest.json"))

    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    line = next(x for x in r.stderr.splitlines() if "reused from an earlier run" in x and "points:" in x)
    total, now, reused = (int(v) for v in re.search(r"(\d+) points: (\d+) trained now, (\d+) reused", line).groups())
    assert reused == finished >= 2 and now == total - reused and total >= 4, line
    runs = (Path(r.stdout.strip().splitlines()[-1]) / "runs.csv").read_text().splitlines()
    assert len(runs) - 1 == total


@pytest.mark.parametrize("offset", [0.3, 1.0, 2.0])
def test_ctrl_c_during_start_up_stops_the_run(offset, lmforge_home, data, prefect_server):
    """SIGINT to the process group at several moments after the flow run begins (the server connection, the
    pool's workers starting): always the one line, exit 130, nothing published; never a run that goes on."""
    import threading

    cmd = [LMFORGE, "clean-data", str(data / "cc-en-jsonl"), str(data / "web-warc-samples")]
    env = {**cli_env(lmforge_home), "PREFECT_API_URL": prefect_server, "PREFECT_LOGGING_LEVEL": "INFO"}
    proc = subprocess.Popen(
        cmd, env=env, preexec_fn=_sigint_default, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    began = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if "Beginning flow run" in line:
                began.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert began.wait(300), "".join(lines)[-3000:]
    time.sleep(offset)
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=60)
    reader.join(timeout=10)
    err = "".join(lines)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted: nothing published" in err and "Traceback" not in err, err[-3000:]
    assert not list((lmforge_home / "artifacts").glob("clean-data/*/manifest.json"))
