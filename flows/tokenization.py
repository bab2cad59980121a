"""The `tokenize` flow: train the BPE on a sample, then encode the corpus into token arrays.

The module is `tokenization`, not `tokenize`: Prefect puts a deployment's folder on
sys.path, and a `flows/tokenize.py` there shadows the standard library's `tokenize`
(imported by `inspect` and `linecache`), which breaks every served flow run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from common.paths import data_root
from filters.readers import expand_inputs
from flows.registry import KEY_PARAMETERS, StageSpec
from flows.runners import RunnerConfig, make_task_runner
from flows.stage import run_stage
from flows.store import Artifact, ArtifactStore
from lm.bpe import train_bpe_with_summary
from lm.corpus import EncodePart, TokenizeConfig, encode_part, merge_parts, plan_parts, write_training_sample
from lm.tokenizer import Tokenizer

STAGE = "tokenize"


@task(name="train-bpe")
def train_bpe_task(sample: Path, config: TokenizeConfig, out_dir: Path) -> dict:
    """Train the byte-level BPE on the sample and save it (vocab, merges, tokenizer.json)."""
    vocab, merges, summary = train_bpe_with_summary(
        sample, config.vocab_size, config.special_tokens, workers=config.workers
    )
    Tokenizer(vocab, merges, config.special_tokens).save(out_dir / "tokenizer")
    return summary


@task(name="encode-part", task_run_name="encode {part.name} [{part.part}/{part.num_parts}]")
def encode_part_task(part: EncodePart, tokenizer_dir: Path, val_fraction: float) -> dict:
    """Encode one part of the corpus into its own train/val token files."""
    return encode_part(part, tokenizer_dir, val_fraction)


def corpus_files(clean: Artifact | None, config: TokenizeConfig) -> list[Path]:
    if clean is not None:
        return sorted(clean.path.glob("shard-*.parquet"))
    if not config.inputs:
        raise ValueError("tokenize needs a clean-data artifact or config.inputs")
    return expand_inputs(config.inputs)


@flow(name="tokenize", log_prints=True)
def tokenize(
    config: TokenizeConfig = TokenizeConfig(),
    clean_artifact: str | None = None,
    force: bool = False,
    runner: RunnerConfig | None = None,
) -> str:
    """Train a BPE tokenizer and write train.bin/val.bin; returns the artifact directory."""
    logger = get_run_logger()
    clean = (
        ArtifactStore().find(clean_artifact, KEY_PARAMETERS["clean_artifact"], "clean_artifact")
        if clean_artifact
        else None
    )
    files = corpus_files(clean, config)

    def build(out_dir: Path, work_dir: Path) -> dict:
        sample = work_dir / "bpe_sample.txt"
        n = write_training_sample(files, sample, config.train_bytes)
        logger.info("BPE sample: %.1f MB", n / 1e6)
        bpe = train_bpe_task(sample, config, out_dir)
        logger.info(
            "BPE: pretokenized %.1f MB at %.1f MB/s, %s merges in %.1f s",
            n / 1e6,
            bpe["pretokenize_mb_per_s"],
            f"{bpe['merges']:,}",
            bpe["merge_s"],
        )
        # encode on the task runner (processes, threads or a Dask cluster); parts merge in order,
        # so the arrays do not depend on where they were encoded
        parts = plan_parts(files, config.workers, out_dir)
        with make_task_runner(runner or RunnerConfig(workers=config.workers)) as tr:
            futures = [
                tr.submit(
                    encode_part_task,
                    {"part": p, "tokenizer_dir": out_dir / "tokenizer", "val_fraction": config.val_fraction},
                )
                for p in parts
            ]
            counts = []
            started = time.perf_counter()
            for i, fut in enumerate(futures, 1):
                counts.append(fut.result())
                done_mb = sum(c["text_bytes"] for c in counts) / 1e6
                logger.info(
                    "encoded part %d/%d: %s documents; %.0f MB so far, %.1f MB/s",
                    i,
                    len(parts),
                    f"{counts[-1]['documents']:,}",
                    done_mb,
                    done_mb / max(time.perf_counter() - started, 1e-9),
                )
        meta = merge_parts(parts, counts, out_dir / "tokenizer", out_dir, config.val_fraction)
        meta["bpe"] = bpe
        (out_dir / "meta.json").write_text(json.dumps(meta, indent=2))
        create_table_artifact(
            key="tokenize-summary",
            table=[{"metric": k, "value": str(v)} for k, v in meta.items() if k != "special_tokens"],
            description="tokenize: tokens, vocab, compression",
        )
        return meta

    artifact = run_stage(
        STAGE, config, build, inputs=[clean] if clean else [], raw_files=[] if clean else files, force=force
    )
    return str(artifact.path)


def _tokenize_rows(path: Path) -> list[dict]:
    meta = json.loads((path / "meta.json").read_text())
    return [{k: str(v) for k, v in meta.items() if k not in ("special_tokens", "bpe")}]


def _tokenize_headline(path: Path) -> list[str]:
    t = json.loads((path / "meta.json").read_text())
    return [
        f"vocab {t['vocab_size']}, {t['train_tokens']:,} train / {t['val_tokens']:,} val tokens, "
        f"{t['val_bytes_per_token']} bytes/token on held-out text"
    ]


SPEC = StageSpec(
    tokenize,
    ("tokenize",),
    _tokenize_rows,
    "Train a BPE tokenizer (pass clean_artifact=KEY to tokenize a clean-data artifact).",
    TokenizeConfig,
    lambda: {"config": {"inputs": [str(data_root() / "tinystories-train-sample")], "vocab_size": 4096}},
    _tokenize_headline,
)
