"""What `--checkpoint` accepts: a pretrain, sft or grpo artifact (its `hf/` export), or a Hugging Face model folder."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from flows.registry import KEY_PARAMETERS
from flows.store import Artifact, ArtifactStore, NoSuchArtifact, StoreError, kinds_text

CHECKPOINT_STAGES = KEY_PARAMETERS["checkpoint"]
WHAT = "--checkpoint"
S = TypeVar("S")


def resolve_checkpoint(checkpoint: str, store: ArtifactStore | None = None) -> tuple[Artifact | None, Path]:
    """(the artifact or None, the Hugging Face folder to load); a clear StoreError for anything else."""
    path = Path(checkpoint)
    if (path / "config.json").is_file() and not (path / "manifest.json").is_file():
        return None, path
    try:
        art = (store or ArtifactStore()).find(checkpoint, CHECKPOINT_STAGES, WHAT)
    except NoSuchArtifact:
        raise StoreError(
            f"{checkpoint!r} is neither an lmforge artifact ({WHAT} takes {kinds_text(CHECKPOINT_STAGES)}) "
            "nor a Hugging Face model folder (a directory with config.json)"
        ) from None
    hf = art.path / "hf"
    if not (hf / "config.json").is_file():
        raise StoreError(f"{art.stage}/{art.key} has no Hugging Face export (hf/config.json): rebuild it with --force")
    return art, hf


def check_vllm_head_dim(model_dir: Path, engine: str) -> None:
    """Before any server starts: a model vLLM's CPU build cannot run fails here, with the fix."""
    import json

    from rl.generation import resolve_engine
    from rl.vllm_cpu import prepare_cpu_engine

    if resolve_engine(engine) == "vllm":
        prepare_cpu_engine(json.loads((model_dir / "config.json").read_text()), str(model_dir))


def tuning_inputs(checkpoint: str, settings: S) -> tuple[Artifact | None, Path, S, list[Path]]:
    """What sft and grpo open with: (the checkpoint's artifact or None, the model folder to load, the settings
    with their engine resolved, the raw files of the cache key). `auto` never enters the key; a Hugging Face
    folder's files and the task's file, data and python rewards' source enter it by content."""
    from rl.generation import resolve_engine

    art, model_dir = resolve_checkpoint(checkpoint)
    settings = settings.model_copy(update={"engine": resolve_engine(settings.engine)})  # type: ignore[attr-defined]
    raw = ([] if art else sorted(p for p in model_dir.iterdir() if p.is_file())) + settings.load_task().files()  # type: ignore[attr-defined]
    return art, model_dir, settings, raw
