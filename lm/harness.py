"""lm-evaluation-harness as the evaluation engine: its task files, loaded and scored by its own code.

A task reference is what `lm_eval run --tasks REF --include_path P` takes: a task file, a
folder of task files, or a task/group/tag name registered in an include path (lmforge's
`configs/tasks/harness/`, the user's, the harness's own `tasks/`). It is resolved by the same
functions the harness's command line calls (`load_yaml` with `!function`s resolved, then
`TaskManager`), and scored by `lm_eval.simple_evaluate` with the harness's Hugging Face
backend (its vLLM backend where the `vllm` distribution is installed). So `include`,
`!function` utils beside the file, `process_docs`, `fewshot_config`, filters, metrics,
groups and tags behave as in `lm_eval`, and scores equal `lm_eval`'s on the same model and
data by construction. Everything a task file can get wrong is found when it loads, before
any model is: an unknown name, a hub `dataset_path` on a machine that cannot reach the hub,
a missing data file, a template that does not render on the first document.

Base models are scored the same way in pretraining (`lm.train`'s `eval_tasks`): the weights of
the moment exported as a Hugging Face folder, then the same harness backend on it.
"""

from __future__ import annotations

import glob
import importlib.metadata
import logging
import os
import socket
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from common.configfile import ConfigError
from common.paths import REPO_ROOT

# lmforge's own lm-eval tasks and suites (held-out TinyStories cloze and story endings, ...)
HARNESS_DIR = REPO_ROOT / "configs" / "tasks" / "harness"
# `datasets` builders that read local files; any other dataset_path is a hub dataset (or a local folder)
LOCAL_BUILDERS = {"json", "csv", "parquet", "text", "arrow"}
HARNESS_KEYS = ("task", "group")
log = logging.getLogger("lmforge.harness")


def is_harness_mapping(data: dict[str, Any]) -> bool:
    """An lm-eval task or group file names itself by `task:` or `group:`; lmforge's own task files by `name:`."""
    return any(k in data for k in HARNESS_KEYS) and "name" not in data


def read_task_yaml(path: Path) -> dict[str, Any]:
    """A task file's top-level mapping with `!function` tags left unresolved (lm-eval's loader, so its tags parse)."""
    from lm_eval.tasks._yaml_loader import load_yaml

    try:
        return load_yaml(path, resolve_func=False, recursive=False)
    except Exception as e:  # yaml's errors, a non-mapping document
        raise ConfigError(f"{path}: not a task file ({e})") from None


@dataclass
class HarnessTasks:
    """Resolved lm-eval task specs (what `simple_evaluate(tasks=...)` takes) and the loaded tasks."""

    reference: str
    include_path: list[str]
    specs: list[str | dict[str, Any]]
    include_defaults: bool
    tasks: dict[str, Any] = field(repr=False)  # leaf task name -> lm_eval Task, its data loaded
    groups: dict[str, Any] = field(repr=False)

    @property
    def name(self) -> str:
        return Path(self.reference).stem if self.reference.endswith((".yaml", ".yml")) else Path(self.reference).name

    def task_manager(self):
        return _task_manager(tuple(self.include_path), self.include_defaults)  # the one that resolved the specs

    def files(self) -> list[Path]:
        """Files whose content shapes the scores: the task files, their folders' includes and utils, local data."""
        found: set[Path] = set()
        for t in self.tasks.values():
            cfg = t.config
            for value in _data_file_values((cfg.dataset_kwargs or {}).get("data_files")):
                p = Path(value).expanduser()
                if p.is_file():
                    found.add(p.resolve())
            if cfg.dataset_path and Path(str(cfg.dataset_path)).expanduser().is_dir():
                found.update(p.resolve() for p in Path(str(cfg.dataset_path)).expanduser().rglob("*") if p.is_file())
        for folder in self._task_folders():
            found.update(p.resolve() for p in folder.iterdir() if p.is_file() and not p.name.endswith(".pyc"))
        return sorted(found)

    def _task_folders(self) -> set[Path]:
        ref = Path(self.reference).expanduser()
        folders = {ref if ref.is_dir() else ref.parent} if ref.exists() else set()
        index = self.task_manager().task_index
        for name in [*self.tasks, *self.groups]:
            entry = index.get(name)
            if entry is not None and entry.yaml_path is not None:
                folders.add(Path(entry.yaml_path).parent)
        return folders


def suites() -> list[str]:
    """lmforge's named suites: the groups among its own lm-eval task files."""
    return sorted(str(cfg["group"]) for path in HARNESS_DIR.glob("*.yaml") if "group" in (cfg := read_task_yaml(path)))


def include_paths(extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    return [str(HARNESS_DIR), *(str(Path(p).expanduser().resolve()) for p in extra)]


@lru_cache(maxsize=8)
def _task_manager(include_path: tuple[str, ...], include_defaults: bool):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(include_path), include_defaults=include_defaults)


def resolve_specs(reference: str, task_manager) -> list[str | dict[str, Any]]:
    """What `lm_eval run --tasks REFERENCE` evaluates, resolved by the same rules (lm-eval's
    EvaluatorConfig.process_tasks): a folder → its *.yaml configs; a .yaml path (globs too) →
    its config; else comma-separated registered names."""
    from lm_eval.tasks._yaml_loader import load_yaml

    def config(path: str) -> dict[str, Any]:
        try:
            return load_yaml(path, resolve_func=True)
        except FileNotFoundError as e:
            raise ConfigError(f"{path}: includes a file that does not exist ({e.filename})") from None
        except (ImportError, AttributeError, SyntaxError) as e:
            raise ConfigError(f"{path}: a !function it names does not import: {e}") from None
        except Exception as e:
            raise ConfigError(f"{path}: not a task file ({type(e).__name__}: {e})") from None

    names = [t for t in reference.split(",") if t]
    if len(names) == 1 and Path(names[0]).expanduser().is_dir() and not task_manager.match_tasks(names):
        files = sorted(glob.glob(str(Path(names[0]).expanduser() / "*.yaml")))
        if not files:
            raise ConfigError(f"task folder {names[0]} holds no .yaml task files")
        return [config(f) for f in files]
    specs: list[str | dict[str, Any]] = []
    for name in names:
        if name.endswith((".yaml", ".yml")):
            files = sorted(glob.glob(str(Path(name).expanduser().absolute())))
            if not files:
                raise ConfigError(f"task file {name} does not exist")
            specs += [config(f) for f in files]
        else:
            matches = task_manager.match_tasks([name])
            if not matches:
                raise KeyError(name)
            specs += [m for m in matches if m not in specs]
    return specs


def load_harness_tasks(reference: str, include_path: list[str] | tuple[str, ...] = ()) -> HarnessTasks:
    """Resolve and load (data included) an lm-eval task reference; ConfigError naming what is wrong."""
    paths = include_paths(include_path)
    # lm-eval's own task index takes ~8 s to build: a reference that resolves without it (a file,
    # a folder, one of lmforge's tasks) skips it; names only the harness registers use it.
    for include_defaults in (False, True):
        manager = _task_manager(tuple(paths), include_defaults)
        try:
            specs = resolve_specs(reference, manager)
            check_hub_reachable(specs, manager, reference)
            loaded = _load(manager, specs, reference)
            break
        except KeyError as e:
            if include_defaults:
                raise ConfigError(
                    f"unknown task {e.args[0]!r}: not a task file, a folder of them, or a task, group or tag name in "
                    f"lm-eval's tasks or the include path ({', '.join(paths)})"
                ) from None
    harness = HarnessTasks(reference, paths, specs, include_defaults, loaded["tasks"], loaded["groups"])
    for name, task in harness.tasks.items():
        check_renders(name, task, reference)
    return harness


def _load(manager, specs: list, reference: str) -> dict:
    try:
        return manager.load(specs)
    except KeyError:
        raise
    except ConnectionError as e:
        raise ConfigError(f"{reference}: {e}; {HUB_HINT}") from None
    except FileNotFoundError as e:
        raise ConfigError(f"{reference}: a data file does not exist: {e.filename or e}") from None
    except Exception as e:  # datasets' and the harness's own errors on a bad file or config
        if type(e).__name__ == "UndefinedError":  # jinja2's, from the harness rendering the first document
            raise ConfigError(
                f"{reference}: a template does not render on the data: {e} (doc_to_text/doc_to_target name the "
                "data's columns)"
            ) from None
        raise ConfigError(f"{reference}: the harness could not load it: {type(e).__name__}: {e}") from None


HUB_HINT = (
    "to run offline, point the task at local files: `dataset_path: json` (or csv, parquet) and "
    "`dataset_kwargs: {data_files: {test: FILE, train: FILE}}`, with the split names the task uses"
)


def _data_file_values(files: Any) -> list[str]:
    if isinstance(files, str):
        return [files]
    if isinstance(files, dict):
        return [v for x in files.values() for v in _data_file_values(x)]
    if isinstance(files, list):
        return [v for x in files for v in _data_file_values(x)]
    return []


def _leaf_configs(spec: str | dict[str, Any], manager, seen: set[str] | None = None) -> list[dict[str, Any]]:
    """The task configs a spec names (a group's children followed through the index), functions unresolved."""
    seen = set() if seen is None else seen
    if isinstance(spec, dict):
        if "group" in spec:
            return [c for child in _as_list(spec.get("task")) for c in _leaf_configs(child, manager, seen)]
        return [spec]
    if spec in seen:
        return []
    seen.add(spec)
    entry = manager.task_index.get(spec)
    if entry is None:
        return []
    cfg = entry.cfg if entry.cfg is not None else (read_task_yaml(Path(entry.yaml_path)) if entry.yaml_path else {})
    if "group" in cfg:
        return [c for child in _as_list(cfg.get("task")) for c in _leaf_configs(child, manager, seen)]
    return [cfg] if "task" in cfg else []  # a tag's entry has no config of its own


def _as_list(x: Any) -> list:
    return x if isinstance(x, list) else [x] if x is not None else []


def check_hub_reachable(specs: list, manager, reference: str) -> None:
    """A hub `dataset_path` on a machine without the hub is one line now, not a minute of retries later."""
    if os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE"):
        return  # the user's offline mode: cached hub datasets load, others fail in `datasets` at once
    for spec in specs:
        for cfg in _leaf_configs(spec, manager):
            path = cfg.get("dataset_path")
            if not isinstance(path, str) or cfg.get("custom_dataset") is not None:
                continue
            if path in LOCAL_BUILDERS or Path(path).expanduser().exists():
                continue
            if not _hub_reachable():
                raise ConfigError(
                    f"{reference}: task {cfg.get('task')!r} reads dataset_path {path!r} from the Hugging Face Hub, "
                    f"which this machine cannot reach; {HUB_HINT}"
                )


@lru_cache(maxsize=1)
def _hub_reachable() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
        return True
    except OSError:
        return False


def check_renders(name: str, task, reference: str) -> None:
    """The first evaluation document through doc_to_text / doc_to_target / doc_to_choice: a template naming
    a missing column, or an empty split, fails here, before a model loads."""
    docs = task.eval_docs
    if docs is None or len(docs) == 0:
        raise ConfigError(f"{reference}: task {name}: its evaluation split has no documents")
    doc = docs[0]
    try:
        task.doc_to_text(doc)
        task.doc_to_target(doc)
        if task.OUTPUT_TYPE == "multiple_choice":
            task.doc_to_choice(doc)
    except Exception as e:
        columns = ", ".join(doc) if isinstance(doc, dict) else type(doc).__name__
        raise ConfigError(
            f"{reference}: task {name}: the first document does not render ({type(e).__name__}: {e}); "
            f"its columns: {columns}"
        ) from None


# --- scoring -------------------------------------------------------------------------------------
def harness_backend(engine: str = "auto") -> str:
    """lm-eval's model type: `vllm` where the `vllm` distribution (a GPU build) is installed and asked for
    (or `auto` on a GPU), else `hf`. vLLM's CPU build is another distribution, which lm-eval's backend refuses."""
    import torch

    try:
        has_vllm = bool(importlib.metadata.version("vllm"))
    except importlib.metadata.PackageNotFoundError:
        has_vllm = False
    if engine == "vllm" and not has_vllm:
        log.warning("lm-eval's vLLM backend needs the `vllm` distribution (a GPU build); using its hf backend")
    if engine in ("vllm", "auto") and has_vllm and torch.cuda.is_available():
        return "vllm"
    return "hf"


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def evaluate_model_dir(
    model_dir: Path,
    harness: HarnessTasks,
    *,
    engine: str = "auto",
    batch_size: int | str = 16,
    limit: float | None = None,
    num_fewshot: int | None = None,
    apply_chat_template: bool = False,
) -> dict[str, Any]:
    """Score a Hugging Face model folder as `lm_eval run --model hf --model_args pretrained=DIR` does."""
    backend = harness_backend(engine)
    args: dict[str, Any] = {"pretrained": str(model_dir), "dtype": "auto"}
    results = simple_evaluate(
        backend,
        args,
        harness,
        device=device(),
        batch_size=batch_size,
        limit=limit,
        num_fewshot=num_fewshot,
        apply_chat_template=apply_chat_template,
    )
    return {"backend": backend, "model_args": args, **results}


def simple_evaluate(
    model,
    model_args: dict[str, Any] | None,
    harness: HarnessTasks,
    *,
    device: str,
    batch_size: int | str,
    limit: float | None,
    num_fewshot: int | None = None,
    apply_chat_template: bool = False,
) -> dict[str, Any]:
    """`lm_eval.simple_evaluate` as its command line calls it (its default seeds); the result as plain JSON."""
    import lm_eval
    from lm_eval.defaults import DEFAULT_OTHER_SEED, DEFAULT_RANDOM_SEED

    # The harness bootstraps stderrs on a forked multiprocessing pool. Forked from a process whose other
    # threads (Prefect's API client and log shipper) may hold locks, a child can deadlock: one test run hung
    # in this step, which this is the likely cause of. The single-process path draws the same seeded
    # replicates, so the stderrs are the same.
    os.environ.setdefault("DISABLE_MULTIPROC", "1")
    results = lm_eval.simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=harness.specs,
        num_fewshot=num_fewshot,
        batch_size=batch_size,
        device=device,
        limit=limit,
        log_samples=True,
        apply_chat_template=apply_chat_template,
        fewshot_as_multiturn=apply_chat_template,
        task_manager=harness.task_manager(),
        random_seed=DEFAULT_RANDOM_SEED,
        numpy_random_seed=DEFAULT_OTHER_SEED,
        torch_random_seed=DEFAULT_OTHER_SEED,
        fewshot_random_seed=DEFAULT_OTHER_SEED,
    )
    return to_json(results)


def to_json(results: dict[str, Any]) -> dict[str, Any]:
    """The parts of lm-eval's result a reader and a comparison need, as plain JSON values (lm-eval's own
    serialisation of numpy scalars and sets)."""
    import json

    from lm_eval.utils import handle_non_serializable

    keep = ("results", "groups", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better", "n-samples")
    out = {k: results[k] for k in keep if k in results}
    out["samples"] = results.get("samples", {})
    return json.loads(json.dumps(out, default=handle_non_serializable))


def metric_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per task × metric × filter, as lm-eval's table: value and stderr (the harness's bootstrap)."""
    rows = []
    for task, metrics in results.get("results", {}).items():
        for key, value in metrics.items():
            if "," not in key or "_stderr" in key:
                continue
            metric, filt = key.split(",", 1)
            stderr = metrics.get(f"{metric}_stderr,{filt}")
            rows.append(
                {
                    "task": task,
                    "filter": filt,
                    "metric": metric,
                    "value": value,
                    "stderr": stderr if isinstance(stderr, float) else None,
                    "n": (results.get("n-samples", {}).get(task) or {}).get("effective"),
                }
            )
    return rows


def flat_metrics(results: dict[str, Any]) -> dict[str, float]:
    """`task/metric[/filter]` → value, for metrics logs (filter `none` left out of the name)."""
    flat = {}
    for r in metric_rows(results):
        if isinstance(r["value"], (int, float)):
            name = f"{r['task']}/{r['metric']}" + ("" if r["filter"] == "none" else f"/{r['filter']}")
            flat[name] = float(r["value"])
    return flat
