"""The `lmforge` command line: one subcommand per stage, plus server / serve / ls / show / verify / gc.

Stage commands check their inputs and keys first (one line and exit 2 on a mistake, before
any Prefect server starts), run the flow against the Prefect API `flows/api_server.py`
picks (yours, `lmforge server start`'s, or a temporary one), print a summary to stderr, and
print the artifact directory as the last line of stdout so that scripts can do
`dir=$(lmforge clean-data ... | tail -1)`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from common.paths import REPO_ROOT
from flows.config import ConfigError, load_config
from flows.processes import route_library_logs
from flows.registry import CONFIG_SECTIONS, STAGES
from flows.settings_flags import StageGroup, stage_command
from flows.store import ArtifactStore, StoreError, check, differences, read_manifest

# Prefect's server logs "database is locked" with analytics on, and they cannot leave this machine anyway.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
route_library_logs()

app = typer.Typer(cls=StageGroup, add_completion=False, no_args_is_help=True, help=__doc__)


def stage(name: str, declared: tuple[str, ...] = ()):
    """A stage's command: its own parameters, and a flag for every setting of the stage's settings model (the
    registry's), but the `declared` ones it takes itself (flows/settings_flags.py)."""
    return stage_command(app, name, lambda: STAGES[name].settings, declared)


err = Console(stderr=True, width=max(Console(stderr=True).width, 160))


def _fail(msg: str) -> None:
    # one line however long (no wrapping), and the message's own brackets are text, not markup
    err.print(f"[bold red]error:[/] {escape(msg)}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def _print_table(title: str, rows: list[dict]) -> None:
    if not rows:
        return
    table = Table(title=title)
    for col in rows[0]:
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    err.print(table)


def _run(fn, *args, **kwargs):
    """Run a flow; turn config/input/store errors into one clear line instead of a traceback."""
    from filters.readers import InputError

    try:
        return fn(*args, **kwargs)
    except (ConfigError, InputError, StoreError, FileNotFoundError, ValueError) as e:
        _fail(str(e))


def _key_preflight(params: dict) -> None:
    """Every artifact-key parameter resolved and checked by kind before Prefect starts
    (flows/registry.KEY_PARAMETERS)."""
    from flows.checkpoints import resolve_checkpoint
    from flows.registry import KEY_PARAMETERS

    for name, value in params.items():
        if name not in KEY_PARAMETERS or value is None:
            continue
        for key in value if isinstance(value, list) else [value]:
            if name.startswith("checkpoint"):
                _run(resolve_checkpoint, str(key))
            else:
                _run(ArtifactStore().find, str(key), KEY_PARAMETERS[name], f"--param {name}")


def _inputs_preflight(inputs: list[str]) -> list[Path]:
    """Before Prefect starts: paths, directories and every file's first bytes
    (filters/preflight.py); returns the input files."""
    from filters.preflight import preflight_inputs

    files, warnings = _run(preflight_inputs, inputs)
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    return files


def _run_flow(flow, *args, **kwargs):
    """Run a stage flow against the Prefect API this command should use (flows/api_server.py)."""
    from flows.api_server import ServerError, prefect_api

    try:
        with prefect_api():
            return _run(flow, *args, **kwargs)
    except ServerError as e:
        _fail(str(e))


# --- stages --------------------------------------------------------------------------------
@stage("clean-data", declared=("inputs",))
def clean_data_cmd(
    inputs: list[str] = typer.Argument(
        None, help="files, directories or globs (JSONL, Parquet, text, WARC/WET, HF dataset dir)"
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML CleanConfig"),
    force: bool = typer.Option(False, help="recompute even if cached"),
    settings: dict | None = None,
) -> None:
    """Clean raw documents into deduplicated Parquet shards."""
    from filters.config import CleanConfig
    from flows.clean_data import clean_data
    from flows.runners import RunnerConfig

    cfg = _load(CleanConfig, config, "clean-data", settings, inputs=inputs or None)
    _inputs_preflight(cfg.inputs)
    if cfg.classifier is not None:
        from flows.quality_model import resolve_classifier_model

        _run(resolve_classifier_model, cfg.classifier.model, ArtifactStore())
    path = _run_flow(clean_data, cfg, RunnerConfig(workers=cfg.workers), force)
    _print_summary("clean-data", path)


@stage("quality-model", declared=("positives", "negatives"))
def quality_model_cmd(
    positives: list[str] = typer.Option(
        None, "--positives", "-p", help="reference-quality text: files, dirs, globs or clean-data keys"
    ),
    negatives: list[str] = typer.Option(
        None, "--negatives", "-n", help="crawl text: files, dirs, globs or clean-data keys"
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML QualityModelConfig"),
    force: bool = typer.Option(False, help="retrain even if cached"),
    settings: dict | None = None,
) -> None:
    """Train a fastText quality classifier (reference text vs. crawl) for clean-data's `classifier`."""
    from filters.quality_classifier import QualityModelConfig
    from flows.quality_model import quality_model, resolve_sources

    cfg = _load(
        QualityModelConfig, config, "quality-model", settings, positives=positives or None, negatives=negatives or None
    )
    for sources in (cfg.positives, cfg.negatives):  # missing inputs fail here, before Prefect starts
        _run(resolve_sources, sources, ArtifactStore())
    path = _run_flow(quality_model, cfg, force)
    _print_summary("quality-model", path)


@stage("tokenize", declared=("inputs",))
def tokenize_cmd(
    clean_artifact: str | None = typer.Argument(None, help="clean-data artifact key/dir (or use --input)"),
    inputs: list[str] = typer.Option(None, "--input", "-i", help="text/JSONL/Parquet files instead of an artifact"),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML TokenizeConfig"),
    force: bool = typer.Option(False),
    settings: dict | None = None,
) -> None:
    """Train a BPE tokenizer on a corpus and encode it into train.bin / val.bin."""
    from filters.preflight import count_documents
    from flows.tokenization import tokenize
    from lm.corpus import TokenizeConfig

    cfg = _load(TokenizeConfig, config, "tokenize", settings, inputs=inputs or None)
    if clean_artifact:
        _run(
            ArtifactStore().find, clean_artifact, ("clean-data",), "tokenize's CLEAN_ARTIFACT"
        )  # before Prefect starts
    elif not cfg.inputs:
        _fail("tokenize needs a clean-data artifact key (CLEAN_ARTIFACT) or --input FILES")
    else:
        found = _run(count_documents, _inputs_preflight(cfg.inputs), 2)
        if found < 2:
            _fail(
                f"{', '.join(cfg.inputs)}: {found} document{'s' if found != 1 else ''}; tokenize needs at least 2 "
                "(one is held out for validation: --val-fraction)"
            )
    path = _run_flow(tokenize, cfg, clean_artifact, force)
    _print_summary("tokenize", path)


@stage("pretrain")
def pretrain_cmd(
    tokenize_artifact: str = typer.Argument(..., help="tokenize artifact key/dir"),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML PretrainConfig (e.g. configs/tinystories-cpu.yaml)"
    ),
    force: bool = typer.Option(False),
    settings: dict | None = None,
) -> None:
    """Pretrain a from-scratch Llama-style LM; resumes an interrupted run."""
    from flows.pretrain import pretrain
    from lm.train import PretrainConfig, check_data_fits, pick_device

    cfg = _load(PretrainConfig, config, "pretrain", settings)
    tok = _run(
        ArtifactStore().find, tokenize_artifact, ("tokenize",), "pretrain's TOKENIZE_ARTIFACT"
    )  # before Prefect starts: key, device, data size
    _run(pick_device, cfg.device)
    _run(check_data_fits, cfg, tok.path)
    path = _run_flow(pretrain, tokenize_artifact, cfg, force)
    for s in json.loads((Path(path) / "manifest.json").read_text())["summary"].get("samples", []):
        err.print(f"[bold]{s['prompt']}[/]{s['completion']}")
    _print_summary("pretrain", path)


@stage("scaling-sweep")
def scaling_sweep_cmd(
    tokenize_artifact: str = typer.Argument(..., help="tokenize artifact key/dir"),
    config: Path = typer.Option(..., "--config", "-c", help="YAML SweepConfig (e.g. configs/sweep-cpu.yaml)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the grid and stop"),
    force: bool = typer.Option(False),
    runner: str = typer.Option("process", help="where points train: process | thread | dask"),
    dask_address: str | None = typer.Option(None, help="a Dask scheduler (runner dask); none starts a LocalCluster"),
    settings: dict | None = None,
) -> None:
    """Train a grid of (compute budget × model size) runs and fit scaling laws."""
    from flows.runners import RunnerConfig
    from flows.scaling_sweep import scaling_sweep
    from scaling.grid import grid_table
    from scaling.sweep import SweepConfig

    cfg = _load(SweepConfig, config, "scaling-sweep", settings)
    tok = _run(ArtifactStore().find, tokenize_artifact, ("tokenize",), "scaling-sweep's TOKENIZE_ARTIFACT")
    if dry_run:  # no Prefect needed to look at a grid
        vocab = json.loads((tok.path / "meta.json").read_text())["vocab_size"]
        points = cfg.grid(vocab)
        _print_table("scaling grid (first round)", grid_table(points))
        if cfg.adaptive.enabled and cfg.adaptive.max_rounds:
            from scaling.adaptive import RULES

            err.print(f"then up to {cfg.adaptive.max_rounds} adaptive rounds, per budget: " + "; ".join(RULES))
        return
    where = _run(RunnerConfig, kind=runner, dask_address=dask_address)
    path = _run_flow(scaling_sweep, tokenize_artifact, cfg, False, force, where)
    err.print(f"plots: {Path(path) / 'isoflop.png'}, {Path(path) / 'parametric.png'}")
    _print_summary("scaling-sweep", path)


TASK_HELP = (
    "a built-in task (addition, gsm8k, math500: configs/tasks/), a task file (lmforge's or lm-eval's; README "
    "'Post-training on your own task'), a folder of lm-eval task files, or an lm-eval task name"
)


def _checkpoint_preflight(checkpoint: str, engine: str | None = None):
    """Before any server starts: the key's kind (pretrain, sft or grpo, or an HF folder) and,
    for vLLM, the model's head size."""
    from flows.checkpoints import check_vllm_head_dim, resolve_checkpoint

    _, model_dir = _run(resolve_checkpoint, checkpoint)
    if engine is not None:
        _run(check_vllm_head_dim, model_dir, engine)


def tuning_command(name: str, summary: str) -> None:
    """`lmforge sft` and `lmforge grpo`: the one shape of a tuning command (a checkpoint, a task, settings)."""

    def command(
        checkpoint: str = typer.Option(
            ..., "--checkpoint", help="pretrain, sft or grpo artifact key/dir, or a Hugging Face model folder"
        ),
        task: str | None = typer.Option(None, "--task", help=TASK_HELP),
        config: Path | None = typer.Option(
            None, "--config", "-c", help=f"YAML settings (or a pipeline file's post_training.{name})"
        ),
        force: bool = typer.Option(False),
        settings: dict | None = None,
    ) -> None:
        spec = STAGES[name]
        cfg = _load(spec.settings, config, name, settings, task=task)
        _checkpoint_preflight(checkpoint, cfg.engine)  # both evaluate with `engine`: vLLM's head sizes
        path = _run_flow(spec.flow, checkpoint, cfg, force)
        _print_summary(name, path)

    command.__doc__ = summary
    stage(name, declared=("task",))(command)


tuning_command(
    "sft",
    "Supervised fine-tuning of a checkpoint on a task's train split (TRL SFTTrainer, loss on the completion only).",
)
tuning_command("grpo", "GRPO-tune a checkpoint with TRL (vLLM rollouts when vLLM is installed).")


@stage("evaluate", declared=("task",))
def evaluate_cmd(
    checkpoints: list[str] = typer.Option(
        ..., "--checkpoint", help="repeat for several: artifact keys/dirs or Hugging Face model folders"
    ),
    task: str | None = typer.Option(None, "--task", help=TASK_HELP),
    suite: str | None = typer.Option(
        None, "--suite", help="a named set of lm-eval tasks scored as one table (configs/tasks/harness/: a group)"
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML EvalConfig (or a pipeline file's post_training.evaluate)"
    ),
    force: bool = typer.Option(False),
    settings: dict | None = None,
) -> None:
    """Evaluate checkpoints on a task: lm-eval tasks scored by lm-evaluation-harness; lmforge tasks by greedy
    accuracy, pass@k, every reward's mean, lengths; a comparison plot."""
    from flows.evaluate import evaluate
    from lm.harness import suites
    from rl.evaluate import EvalConfig

    if suite is not None:
        if task is not None:
            _fail("give --task or --suite, not both")
        if suite not in suites():
            _fail(f"unknown suite {suite!r}; the suites: {', '.join(suites())} (configs/tasks/harness/)")
        task = suite
    cfg = _load(EvalConfig, config, "evaluate", settings, task=task)
    from flows.evaluate import engine_that_runs

    for c in checkpoints:
        _checkpoint_preflight(c, engine_that_runs(cfg))
    path = _run_flow(evaluate, checkpoints, cfg, force)
    err.print(f"plot: {Path(path) / 'comparison.png'}")
    _print_summary("evaluate", path)


@app.command("pipeline")
def pipeline_cmd(
    config: Path = typer.Option(
        REPO_ROOT / "configs" / "pipeline-demo.yaml", "--config", "-c", help="YAML PipelineConfig"
    ),
) -> None:
    """Run the whole pipeline from one config; every stage cached on its own."""
    from flows.pipeline import PipelineConfig, pipeline

    cfg = _load(PipelineConfig, config, "pipeline")
    _inputs_preflight(cfg.clean_data.inputs)
    if cfg.post_training is not None and cfg.post_training.checkpoint is not None:
        _checkpoint_preflight(cfg.post_training.checkpoint)
    out = _run_flow(pipeline, cfg)
    _print_pipeline_summary(out)
    print(json.dumps(out))


@app.command("run")
def run_cmd(
    stage: str = typer.Argument(..., help="a stage of the registry (flows/registry.py)"),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML settings (a file of its own or a pipeline file)"
    ),
    params: list[str] = typer.Option(
        None, "--param", help="NAME=VALUE: another parameter of the flow (VALUE read as YAML)"
    ),
    force: bool = typer.Option(False, help="recompute even if cached"),
) -> None:
    """Run any registered stage: settings from -c FILE, the flow's other parameters as --param.

    Every stage is runnable this way from its spec alone (`SPEC` in its flow module); the stage commands
    above are shortcuts with friendlier arguments."""
    import inspect
    import typing

    import yaml
    from pydantic import BaseModel

    if stage not in STAGES:
        _fail(f"no stage {stage!r}; stages: {', '.join(STAGES)}")
    flow = STAGES[stage].flow
    hints = typing.get_type_hints(flow.fn)
    signature = inspect.signature(flow.fn)
    settings = [n for n in signature.parameters if isinstance(hints.get(n), type) and issubclass(hints[n], BaseModel)]
    kwargs: dict = {n: _load(hints[n], config, stage) for n in settings[:1]}
    for item in params or []:
        name, eq, value = item.partition("=")
        if not eq or name not in signature.parameters or name in kwargs:
            _fail(
                f"--param {item!r}: expected NAME=VALUE with NAME one of "
                f"{[n for n in signature.parameters if n not in kwargs]}"
            )
        kwargs[name] = yaml.safe_load(value)
    if "force" in signature.parameters:
        kwargs["force"] = force
    missing = [n for n, p in signature.parameters.items() if p.default is inspect.Parameter.empty and n not in kwargs]
    if missing:
        _fail(
            f"lmforge run {stage}: missing {', '.join(f'--param {n}=VALUE' for n in missing)} "
            f"({STAGES[stage].description})"
        )
    _key_preflight(kwargs)
    path = _run_flow(flow, **kwargs)
    _print_summary(stage, path if isinstance(path, str) else json.dumps(path))


def _print_pipeline_summary(out: dict[str, str]) -> None:
    """Each stage's headline, as its spec words it (artifact dirs are <stage>/<key>)."""
    for name, path in out.items():
        spec = STAGES[Path(path).parent.name]
        if spec.headline is None:
            _print_table(f"{name}: {spec.name}", spec.summary_rows(Path(path)))
        else:
            for line in spec.headline(Path(path)):
                err.print(f"[bold]{name}[/]: {line}")


scaling_app = typer.Typer(no_args_is_help=True, help="Scaling-law fits on any table of runs.")
app.add_typer(scaling_app, name="scaling")


@scaling_app.command("fit")
def scaling_fit_cmd(
    runs_file: Path = typer.Argument(..., help="CSV or JSON: parameters; tokens or compute; loss"),
    method: str = typer.Option("both", help="isoflop | parametric | both"),
    predict: list[float] = typer.Option([1e23], help="compute budgets (FLOPs) to predict at"),
    out: Path | None = typer.Option(None, help="output directory (default: $LMFORGE_HOME/fits/<runs file name>)"),
    drop_highest_loss: int = typer.Option(
        0, help="drop the N highest-loss runs first (Epoch drops 5 on Chinchilla's points)"
    ),
    bootstrap: int = typer.Option(1000, help="bootstrap resamples for intervals"),
) -> None:
    """Fit scaling laws to RUNS_FILE, print laws and predictions, write fit.json + plots."""
    from scaling.report import fit_runs, summary_lines
    from scaling.runs import load_runs

    if method not in ("isoflop", "parametric", "both"):
        _fail(f"--method must be isoflop, parametric or both, not {method!r}")
    runs = _run(load_runs, runs_file, drop_highest_loss)
    # never beside the input: it may be read-only, or shared data
    out_dir = out or ArtifactStore().home / "fits" / runs_file.stem
    result = _run(fit_runs, runs, out_dir, method, predict, bootstrap)
    for line in summary_lines(result):
        err.print(line)
    print(out_dir.resolve())


def _load(model, config: Path | None, stage: str, flags: dict | None = None, **overrides):
    """A stage's settings: its own section of a pipeline file (the registry says which), or a file of its own,
    under the command's setting flags (nested: `--lora.r 8` keeps the file's other lora settings)."""
    try:
        return load_config(
            model,
            config,
            sections=list(STAGES[stage].sections),
            pipeline_sections=CONFIG_SECTIONS,
            **(flags or {}),
            **overrides,
        )
    except ConfigError as e:
        _fail(str(e))


def _print_summary(stage: str, path: str) -> None:
    """The stage's summary table (rows from the registry), then the artifact dir as the last stdout line."""
    _print_table(stage, STAGES[stage].summary_rows(Path(path)))
    print(path)


# --- artifacts -----------------------------------------------------------------------------
def _status(artifact, store: ArtifactStore) -> str:
    """damaged: … | files present (sizes match); verified … or not | stale: what changed in the code since it was built.

    The quick check reads sizes, not bytes: whether the bytes were checked is said, not implied."""
    from flows.fingerprint import code_fingerprint

    problems = check(artifact)
    if problems:
        return "damaged: " + "; ".join(problems[:3])
    verified = store.verified_status(artifact)
    recorded = (read_manifest(artifact.path) or {}).get("code")
    if not recorded:
        return f"stale: built before code-aware keys; {verified}"
    changes = differences({"code": recorded}, {"code": code_fingerprint(recorded["root"])})
    return ("stale: " + "; ".join(changes[:3]) + "; " if changes else "sizes ok; ") + verified


@app.command("ls")
def ls_cmd(stage: str | None = typer.Argument(None, help="only this stage")) -> None:
    """List artifacts: stage, key, created, size, inputs, and whether a rerun would rebuild them."""
    store = ArtifactStore()
    rows = []
    for a in store.list():
        if stage and a.stage != stage:
            continue
        m = read_manifest(a.path) or {}
        size = sum(f.get("size", 0) for f in m.get("files", {}).values())
        rows.append(
            {
                "stage": a.stage,
                "key": a.key,
                "created": m.get("created", ""),
                "size": f"{size / 1e6:.1f} MB",
                "inputs": ", ".join(f"{i['stage']}/{i['key']}" for i in m.get("inputs", [])) or "raw files",
                "status": _status(a, store),
            }
        )
    if not rows:
        err.print(f"no artifacts under {store.root}")
        return
    _print_table(f"artifacts in {store.root}", rows)


@app.command("show")
def show_cmd(key: str = typer.Argument(..., help="artifact key, unique prefix, or directory")) -> None:
    """Print an artifact's manifest and its lineage back to the raw inputs."""
    store = ArtifactStore()
    try:
        artifact = store.locate(key)
    except StoreError as e:
        _fail(str(e))
    m = read_manifest(artifact.path) or {}
    print(json.dumps({k: v for k, v in m.items() if k not in ("files", "code")}, indent=2))
    print(f"\nstatus: {_status(artifact, store)}")
    print("\nlineage:")
    for depth, a in enumerate(store.lineage(artifact)):
        raw = (read_manifest(a.path) or {}).get("raw_inputs", [])
        print(f"  {'  ' * depth}{a.stage}/{a.key}" + (f"  ← {len(raw)} raw files" if raw else ""))
        for r in raw[:10]:
            print(f"  {'  ' * depth}    {r['path']}")
    print(artifact.path)


@app.command("gc")
def gc_cmd(
    keep: list[str] = typer.Argument(
        None, help="keys to keep (with their lineage); default: the newest artifact of every branch"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="only list what would be removed"),
    yes: bool = typer.Option(False, "--yes", "-y", help="remove without asking"),
    resumable: bool = typer.Option(
        False, "--resumable", help="also remove the resumable state interrupted runs left in work/"
    ),
) -> None:
    """Remove damaged artifacts, artifacts nothing kept depends on, and temp and work dirs of dead runs.

    With no keys, every branch is kept: the newest intact artifact of each distinct config of
    each stage, with everything its lineage reaches; what goes is older builds of a config
    (earlier code or inputs) and damaged artifacts. It lists what it would remove and the
    space freed, and asks first. Anything a running stage holds is skipped (file locks).
    """
    store = ArtifactStore()
    all_artifacts = store.list()
    intact = {a for a in all_artifacts if not check(a)}
    roots = [_run(store.find, k) for k in keep] if keep else store.branch_heads(intact)
    live = {a.key for r in roots for a in store.lineage(r)}
    doomed = [
        (a, "damaged" if a not in intact else "unreferenced")
        for a in all_artifacts
        if not (a.key in live and a in intact)
    ]
    if not doomed:
        err.print(f"nothing to remove: {len(all_artifacts)} artifacts, every one kept")
    else:
        sizes = {a.key: store.disk_bytes(a) for a, _ in doomed}
        for a, why in doomed:
            err.print(
                f"{'would remove' if dry_run or not yes else 'removing'} {a.stage}/{a.key} ({why}, "
                f"{sizes[a.key] / 1e6:.1f} MB)"
            )
        err.print(f"{len(doomed)} of {len(all_artifacts)} artifacts, {sum(sizes.values()) / 1e6:.1f} MB")
        if dry_run:
            return
        if not yes and not typer.confirm("remove them?", default=False, err=True):
            err.print("nothing removed")
            raise typer.Exit(1)
        for a, _ in doomed:
            if not store.remove(a):
                err.print(f"kept {a.stage}/{a.key}: in use by a running stage")
    for path in store.foreign_entries():
        err.print(f"left {path.relative_to(store.root)}: not an artifact the store made (a link or a file)")
    if not dry_run:
        n = store.clean_tmp()
        if n:
            err.print(f"removed {n} temp dirs of runs that are no longer running")
    removed, kept = store.clean_work(resumable=resumable, dry_run=dry_run)
    if removed:
        err.print(
            f"{'would remove' if dry_run else 'removed'} {len(removed)} work dirs of runs no longer running "
            f"({sum(b for _, b in removed) / 1e6:.1f} MB)"
        )
    for name, size in kept:
        err.print(
            f"kept work/{name} ({size / 1e6:.1f} MB): what a rerun of that interrupted run resumes from "
            "(`lmforge gc --resumable` removes it)"
        )


@app.command("verify")
def verify_cmd(
    keys: list[str] = typer.Argument(None, help="artifact keys or prefixes (default: every artifact)"),
) -> None:
    """Check artifacts against their manifests: every file present, sizes and sha256s match."""
    store = ArtifactStore()
    artifacts = [_run(store.locate, k) for k in keys] if keys else store.list()
    bad = 0
    for a in artifacts:
        problems = check(a, deep=True)
        store.record_verified(a, not problems)
        bad += bool(problems)
        err.print(
            f"{a.stage}/{a.key}: " + ("[green]ok[/]" if not problems else "[red]damaged[/]: " + "; ".join(problems))
        )
    if bad:
        raise typer.Exit(1)


# --- orchestration -------------------------------------------------------------------------
server_app = typer.Typer(
    no_args_is_help=True,
    help="A reusable local Prefect server for this LMFORGE_HOME (stage commands use it when it is up).",
)
app.add_typer(server_app, name="server")


@server_app.command("start")
def server_start_cmd() -> None:
    """Start `prefect server` in the background (pid, port and log under $LMFORGE_HOME/server); no-op when it runs."""
    from flows.api_server import LocalServer, ServerError

    server = LocalServer(ArtifactStore().home)
    running = server.state()
    try:
        state = running or server.start()
    except ServerError as e:
        _fail(str(e))
    err.print(
        f"prefect server {'already running' if running else 'started'} (pid {state['pid']}): UI {state['ui']}, "
        f"log {state['log']}"
    )
    print(state["url"])


@server_app.command("stop")
def server_stop_cmd() -> None:
    """Stop the server `lmforge server start` started."""
    from flows.api_server import LocalServer

    stopped = LocalServer(ArtifactStore().home).stop()
    err.print("server stopped" if stopped else "no lmforge server running")


@server_app.command("status")
def server_status_cmd() -> None:
    """Say whether the local server runs, its UI URL, and which server stage commands would use."""
    from flows.api_server import LocalServer, user_api_url

    server = LocalServer(ArtifactStore().home)
    state, url = server.state(), user_api_url()
    if url:
        err.print(f"PREFECT_API_URL is set: stage commands use {url}")
    if state is None:
        err.print("not running: stage commands start a temporary server each (`lmforge server start` to reuse one)")
        raise typer.Exit(1)
    answering = server.url() is not None
    err.print(
        f"running (pid {state['pid']}{'' if answering else ', not answering'}): UI {state['ui']}, API "
        f"{state['url']}, log {state['log']}"
    )
    print(state["ui"])


@app.command("serve")
def serve_cmd() -> None:
    """Serve every stage as a deployment named `default` (on PREFECT_API_URL, else `lmforge server start`'s server)."""
    from flows.serve import serve_all

    try:
        serve_all()
    except ConnectionError as e:
        _fail(str(e))


def main() -> None:
    from flows.processes import install_stop_handlers

    install_stop_handlers()
    app(prog_name="lmforge")


if __name__ == "__main__":
    sys.exit(main())
