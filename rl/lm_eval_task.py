"""lm-evaluation-harness `generate_until` task files, read as lmforge tasks (data must be local).

A user's existing eval task runs unchanged through `evaluate`, `sft` and `grpo`. The fields
honoured, and what they become (rl/tasks.py's schema):

| lm-eval | lmforge |
|---|---|
| `task` | `name` |
| `dataset_path: json / csv / parquet` + `dataset_kwargs.data_files` | `data.train` / `data.test` (by the split names below) |
| `training_split`, `test_split` (else `validation_split`) | which data file is which split |
| `doc_to_text` (Jinja, or a column name) | `prompt` |
| `doc_to_target` (a column name, or Jinja) | `answer_field`, or `answer_template` |
| `generation_kwargs.until`, `.max_gen_toks` | `stop`, `max_completion_tokens` (`do_sample: false`, `temperature: 0` accepted: evaluate decodes greedily and samples) |
| `filter_list` (its first chain: `regex` with `regex_pattern`, then `take_first`) | each reward's `extract` |
| `metric_list` (`exact_match`) | an `exact` reward |
| `num_fewshot` | `num_fewshot` (shots from the train split, `target_delimiter` " ", `fewshot_delimiter` "\\n\\n") |
| `metadata`, `tag`, `group`, `aggregation`/`higher_is_better` in metrics | ignored (they do not change a result) |

Any other field, or a value these cannot express, is an error naming it: a task that
would silently score differently here than in lm-eval is worse than one that fails.
"""

from __future__ import annotations

import re
from typing import Any

from lm.configfile import ConfigError

MARKERS = ("doc_to_text", "dataset_path", "output_type")
HONOURED = {
    "task",
    "dataset_path",
    "dataset_kwargs",
    "training_split",
    "validation_split",
    "test_split",
    "doc_to_text",
    "doc_to_target",
    "output_type",
    "generation_kwargs",
    "filter_list",
    "metric_list",
    "num_fewshot",
    "target_delimiter",
    "fewshot_delimiter",
    "metadata",
    "tag",
    "group",
}
PLAIN_COLUMN = re.compile(r"^\s*(?:\{\{\s*)?([A-Za-z_][A-Za-z0-9_]*)(?:\s*\}\})?\s*$")


def is_lm_eval_task(data: dict[str, Any]) -> bool:
    return any(k in data for k in MARKERS)


def from_lm_eval(d: dict[str, Any], where: str) -> dict[str, Any]:
    """An lm-eval task mapping → an lmforge task mapping; ConfigError naming the first field it cannot honour."""

    def unsupported(field: str, why: str) -> ConfigError:
        return ConfigError(f"{where}: lm-eval field {field}: {why} (README 'Tasks' lists what is honoured)")

    extra = sorted(set(d) - HONOURED)
    if extra:
        raise unsupported(extra[0], "not supported")
    if d.get("output_type", "generate_until") != "generate_until":
        raise unsupported("output_type", f"{d['output_type']!r}: only generate_until tasks are read")
    if d.get("target_delimiter", " ") != " " or d.get("fewshot_delimiter", "\n\n") != "\n\n":
        raise unsupported("target_delimiter/fewshot_delimiter", "only the defaults (' ' and a blank line)")
    task: dict[str, Any] = {
        "name": str(d.get("task") or "lm-eval-task"),
        "data": _data(d, unsupported),
        "prompt": _template(d.get("doc_to_text"), unsupported, "doc_to_text"),
        "num_fewshot": int(d.get("num_fewshot") or 0),
    }
    target = d.get("doc_to_target")
    if target is None:
        raise unsupported("doc_to_target", "missing")
    plain = PLAIN_COLUMN.match(str(target))
    task.update({"answer_field": plain.group(1)} if plain else {"answer_template": str(target)})
    gen = dict(d.get("generation_kwargs") or {})
    task["stop"] = list(gen.pop("until", []) or [])
    if "max_gen_toks" in gen:
        task["max_completion_tokens"] = int(gen.pop("max_gen_toks"))
    if gen.pop("do_sample", False) or gen.pop("temperature", 0) not in (0, 0.0, None):
        raise unsupported(
            "generation_kwargs", "sampling settings: evaluate reports greedy accuracy and sampled pass@k itself"
        )
    if gen:
        raise unsupported(f"generation_kwargs.{sorted(gen)[0]}", "not supported")
    extract = _extract(d.get("filter_list"), unsupported)
    _check_metrics(d.get("metric_list"), unsupported)
    task["rewards"] = [{"kind": "exact", **({"extract": extract} if extract else {})}]
    return task


def _template(value: Any, unsupported, field: str) -> str:
    if not isinstance(value, str):
        raise unsupported(field, "must be a Jinja template or a column name")
    return value if "{{" in value or "{%" in value else "{{ " + value.strip() + " }}"


def _data(d: dict[str, Any], unsupported) -> dict[str, str]:
    path, kwargs = d.get("dataset_path"), d.get("dataset_kwargs") or {}
    if path not in ("json", "csv", "parquet"):
        raise unsupported(
            "dataset_path", f"{path!r}: data must be local here (json, csv or parquet with dataset_kwargs.data_files)"
        )
    files = kwargs.get("data_files")
    if not isinstance(files, dict):
        raise unsupported("dataset_kwargs.data_files", "give a mapping of split name to file")
    splits = {"train": d.get("training_split"), "test": d.get("test_split") or d.get("validation_split")}
    if not splits["test"]:
        raise unsupported("test_split", "missing (or validation_split)")
    data = {}
    for ours, theirs in splits.items():
        if theirs is None:
            continue
        if theirs not in files:
            raise unsupported("dataset_kwargs.data_files", f"no file for split {theirs!r}; it has {', '.join(files)}")
        data[ours] = str(files[theirs])
    return data


def _extract(filters: Any, unsupported) -> str | None:
    if not filters:
        return None
    chain = filters[0].get("filter", []) if isinstance(filters, list) and isinstance(filters[0], dict) else None
    functions = [f.get("function") for f in chain or []]
    if functions not in (["regex"], ["regex", "take_first"]) or len(filters) > 1:
        raise unsupported("filter_list", f"only one chain of regex (+ take_first), not {functions or filters!r}")
    extra = set(chain[0]) - {"function", "regex_pattern"}
    if extra:
        raise unsupported(f"filter_list.{sorted(extra)[0]}", "not supported")
    return str(chain[0]["regex_pattern"])


def _check_metrics(metrics: Any, unsupported) -> None:
    for m in metrics or []:
        if m.get("metric") != "exact_match":
            raise unsupported("metric_list", f"{m.get('metric')!r}: only exact_match")
        extra = {k for k, v in m.items() if v} - {"metric", "aggregation", "higher_is_better"}
        if extra:
            raise unsupported(f"metric_list.{sorted(extra)[0]}", "not supported")
