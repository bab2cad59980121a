"""What `--checkpoint` accepts: a pretrain, sft or grpo artifact (its `hf/` export), or a Hugging Face model folder."""

from __future__ import annotations

from pathlib import Path

from flows.registry import KEY_PARAMETERS
from flows.store import Artifact, ArtifactStore, NoSuchArtifact, StoreError, kinds_text

CHECKPOINT_STAGES = KEY_PARAMETERS["checkpoint"]
WHAT = "--checkpoint"


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
