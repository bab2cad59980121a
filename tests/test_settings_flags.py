"""Every setting of a stage is a flag of its command, generated from the settings model (flows/settings_flags.py):
nothing declared twice, nested settings dotted and merged into the file's, and the flags built only for the
command that runs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from flows.config import load_config
from flows.registry import STAGES
from flows.settings_flags import StageGroup, settings_of


@pytest.mark.parametrize("stage", sorted(StageGroup.stage_commands))
def test_each_stage_command_has_one_flag_per_setting_and_none_twice(stage):
    command = StageGroup.stage_commands[stage]()
    flags = [o for p in command.params for o in (*p.opts, *p.secondary_opts)]
    assert len(flags) == len(set(flags)), sorted(f for f in flags if flags.count(f) > 1)
    own = {p.name for p in command.params}
    missing = [s.flag for s in settings_of(STAGES[stage].settings) if s.flag not in flags]
    # a setting the command takes itself (a positional `inputs`, `--task` with its own help) is its own parameter
    assert all(f.lstrip("-").split(".")[0].replace("-", "_") in own for f in missing), missing


def test_a_nested_flag_keeps_the_files_other_settings_and_is_validated(tmp_path):
    from rl.sft import SFTSettings

    config = tmp_path / "sft.yaml"
    config.write_text(yaml.safe_dump({"sft": {"max_steps": 7, "lora": {"r": 16, "alpha": 8.0}}}))
    settings = load_config(SFTSettings, config, sections=["sft"], lora={"r": 4}, max_steps=None)
    assert (settings.lora.r, settings.lora.alpha, settings.max_steps) == (4, 8.0, 7)
    # through the command line: the flag reaches the model, whose error names the nested field, before any work
    result = CliRunner().invoke(app, ["sft", "--checkpoint", "nowhere", "-c", str(config), "--lora.r", "0"])
    assert result.exit_code == 2 and "lora.r: Input should be greater than or equal to 1" in result.output
    result = CliRunner().invoke(app, ["pretrain", "nowhere", "--betas", "[0.9]"])  # a YAML-valued flag: 2 numbers
    assert result.exit_code == 2 and "betas" in result.output


def test_listing_the_commands_imports_no_settings_model():
    """`lmforge --help` (and `ls`, `show`, ...) build no stage's flags: its settings model's module imports torch."""
    code = (
        "import sys; from typer.testing import CliRunner; from flows.cli import app; "
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0; "
        "print(sorted(m for m in ('torch', 'rl.sft', 'lm.train', 'flows.sft', 'flows.pipeline') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_registry_collects_each_stages_spec_from_its_own_module():
    """A stage is its flow module: STAGES[name] is that module's SPEC, for its flow; the pipeline file's sections
    named once in the registry are the pipeline's settings model's."""
    from flows.pipeline import PipelineConfig
    from flows.registry import PIPELINE_SECTIONS, STAGE_MODULES

    for name, module in STAGE_MODULES.items():
        spec = STAGES[name]
        assert spec.flow.fn.__module__ == module and spec.flow.name == name
    assert PIPELINE_SECTIONS == set(PipelineConfig.model_fields)
    with pytest.raises(KeyError):
        STAGES["no-such-stage"]


def test_another_stages_file_is_named_as_such_before_any_work(tmp_path):
    """`lmforge grpo -c sft.yaml`: the file's sections are another stage's, said in one line, not read as grpo's."""
    sft_file = tmp_path / "sft.yaml"
    sft_file.write_text("sft:\n  max_steps: 3\n")
    result = CliRunner().invoke(app, ["grpo", "--checkpoint", "nowhere", "-c", str(sft_file)])
    assert result.exit_code == 2 and "no 'grpo' or 'post_training' section (it has 'sft'" in result.output
