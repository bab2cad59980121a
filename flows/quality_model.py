"""The `quality-model` flow: positives + negatives → a cached fastText quality classifier.

The artifact holds `model.bin` (fastText), `metrics.json` (held-out precision/recall/F1,
counts, score histograms) and `scores.png`. clean-data applies it with
`classifier: {model: <this artifact's key>, keep: {...}}`.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

from prefect import flow, get_run_logger

from common.plotting import plot_score_histogram
from filters.document import Stats
from filters.quality_classifier import QualityModelConfig, read_texts, train_quality_classifier
from filters.readers import InputError, expand_inputs
from flows.config import demo_config
from flows.registry import StageSpec
from flows.stage import run_stage
from flows.store import Artifact, ArtifactStore, StoreError, manifest_summary
from flows.ui import publish_figures

STAGE = "quality-model"
MODEL_FILE = "model.bin"


def resolve_sources(items: list[str], store: ArtifactStore) -> tuple[list[Path], list[Artifact]]:
    """Files, directories and globs as clean-data reads them; anything else must be a
    clean-data artifact key (its shards are read)."""
    files: list[Path] = []
    artifacts: list[Artifact] = []
    for item in items:
        if Path(item).exists() or glob.glob(item):
            files += expand_inputs([item])
            continue
        try:
            artifact = store.find(item)
        except StoreError as e:
            raise InputError(f"{item}: no such file, directory or glob match, and not an artifact ({e})") from None
        if artifact.stage != "clean-data":
            raise InputError(f"{item}: a {artifact.stage} artifact; texts come from files or clean-data artifacts")
        artifacts.append(artifact)
        files += sorted(artifact.path.glob("*.parquet"))
    return files, artifacts


def resolve_classifier_model(model: str, store: ArtifactStore) -> tuple[Path, Artifact | None]:
    """clean-data's `classifier.model`: a fastText file, or a quality-model artifact key."""
    if Path(model).is_file():
        return Path(model).resolve(), None
    try:
        artifact = store.find(model)
    except StoreError as e:
        raise InputError(f"classifier.model {model!r}: not a file, and not an artifact ({e})") from None
    if artifact.stage != STAGE:
        raise InputError(f"classifier.model {model!r}: a {artifact.stage} artifact, not a {STAGE} one")
    return artifact.path / MODEL_FILE, artifact


@flow(name="quality-model", log_prints=True)
def quality_model(config: QualityModelConfig, force: bool = False) -> str:
    """Train a fastText classifier of reference-quality text vs. crawl; returns the artifact dir."""
    logger = get_run_logger()
    store = ArtifactStore()
    pos_files, pos_artifacts = resolve_sources(config.positives, store)
    neg_files, neg_artifacts = resolve_sources(config.negatives, store)
    logger.info("quality-model: %d positive and %d negative input files", len(pos_files), len(neg_files))

    def build(out_dir: Path, work_dir: Path) -> dict:
        stats = Stats()
        trained = train_quality_classifier(
            read_texts(pos_files, stats, config.split_text_on_blank_lines),
            read_texts(neg_files, stats, config.split_text_on_blank_lines),
            config,
            work_dir,
        )
        trained.model.save_model(str(out_dir / MODEL_FILE))
        metrics = {**trained.metrics, "read": stats.to_dict()}
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        plot_score_histogram(metrics, out_dir / "scores.png")
        held = metrics["heldout"]
        logger.info(
            "held out: precision %.3f recall %.3f F1 %.3f on %d + %d examples",
            held["precision"],
            held["recall"],
            held["f1"],
            held["positives"],
            held["negatives"],
        )
        publish_figures(
            "quality-model",
            "quality-model: held-out metrics and score histograms",
            "| metric | value |\n|---|---|\n"
            + "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in held.items()),
            [out_dir / "scores.png"],
        )
        return {
            **{k: held[k] for k in ("precision", "recall", "f1")},
            "train_positives": metrics["train"]["positives"],
            "train_negatives": metrics["train"]["negatives"],
            "heldout_examples": held["positives"] + held["negatives"],
        }

    artifact = run_stage(
        STAGE, config, build, inputs=pos_artifacts + neg_artifacts, raw_files=pos_files + neg_files, force=force
    )
    return str(artifact.path)


def _quality_model_rows(path: Path) -> list[dict]:
    return [{k: (f"{v:.3f}" if isinstance(v, float) else str(v)) for k, v in manifest_summary(path).items()}]


def _quality_model_headline(path: Path) -> list[str]:
    q = json.loads((path / "metrics.json").read_text())["heldout"]
    return [
        f"held-out precision {q['precision']:.3f}, recall {q['recall']:.3f}, F1 {q['f1']:.3f} "
        f"({q['positives']} reference / {q['negatives']} crawl examples)"
    ]


SPEC = StageSpec(
    quality_model,
    ("quality_model",),
    _quality_model_rows,
    "Train a fastText quality classifier (reference text vs. crawl) for clean-data's classifier.",
    QualityModelConfig,
    lambda: {"config": demo_config()["quality_model"]},
    _quality_model_headline,
)
