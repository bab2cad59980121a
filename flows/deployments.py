"""The `default` deployment of every stage, with parameters that run on the sample data."""

from __future__ import annotations

from prefect.deployments.runner import RunnerDeployment

from lm.paths import REPO_ROOT, data_root


def default_deployments() -> list[RunnerDeployment]:
    import yaml

    from flows.clean_data import clean_data
    from flows.grpo import grpo
    from flows.pipeline import pipeline
    from flows.pretrain import pretrain
    from flows.scaling_sweep import scaling_sweep
    from flows.tokenization import tokenize

    data = data_root()
    demo = yaml.safe_load((REPO_ROOT / "configs" / "pipeline-demo.yaml").read_text().replace("${LMFORGE_DATA}", str(data)))
    return [
        clean_data.to_deployment(name="default", parameters={"config": {"inputs": [str(data / "cc-en-jsonl"), str(data / "web-warc-samples")]}},
                                 description="Clean the sample web data (override config.inputs to clean your own)."),
        tokenize.to_deployment(name="default", parameters={"config": {"inputs": [str(data / "tinystories-train-sample")], "vocab_size": 4096}},
                               description="Train a BPE tokenizer (pass clean_artifact=KEY to tokenize a clean-data artifact)."),
        pretrain.to_deployment(name="default", description="Pretrain on a tokenize artifact: --param tokenize_artifact=KEY."),
        scaling_sweep.to_deployment(name="default", parameters={"config": demo["scaling_sweep"]},
                                    description="Scaling sweep on a tokenize artifact: --param tokenize_artifact=KEY."),
        grpo.to_deployment(name="default", description="GRPO on a checkpoint: --param checkpoint=KEY_OR_HF_DIR."),
        pipeline.to_deployment(name="default", parameters={"config": demo}, description="The whole demo pipeline."),
    ]
