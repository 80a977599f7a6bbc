"""The public Python API: `xraymunit.<stage>(...)` is a plain function, however things were imported."""

import subprocess
import sys

import pytest

STAGES = {"ingest": "ingestion", "merge": "ingestion", "train": "training", "synthesize": "synthesis",
          "evaluate": "evaluation"}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_is_a_plain_function_before_and_after_importing_its_package(stage):
    package = STAGES[stage]
    code = (
        "import xraymunit, importlib, types\n"
        f"first = xraymunit.{stage}\n"
        f"assert isinstance(first, types.FunctionType) and first.__name__ == '{stage}'\n"
        f"importlib.import_module('xraymunit.{package}')\n"
        f"assert xraymunit.{stage} is first\n"
        f"from xraymunit.{package} import {stage} as f\n"
        "assert f is first\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_package_imported_first_then_the_function_still_calls_the_stage(tmp_path):
    code = (
        "import xraymunit.synthesis\n"
        "import xraymunit\n"
        "try:\n"
        f"    xraymunit.synthesize('{tmp_path}/missing.pt', '{tmp_path}', '{tmp_path}/out')\n"
        "except Exception as exc:\n"
        "    assert 'checkpoint not found' in str(exc), exc\n"
        "else:\n"
        "    raise SystemExit('expected an error')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_module_is_made_callable():
    import xraymunit.synthesis

    assert type(xraymunit.synthesis).__name__ == "module"
    assert not callable(xraymunit.synthesis)


def test_import_is_cheap():
    out = subprocess.run([sys.executable, "-c", "import sys, xraymunit; print('torch' in sys.modules)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


@pytest.mark.parametrize("stage", ["xraymunit.synthesis.stage", "xraymunit.evaluation.stage"])
def test_stages_that_need_no_monai_do_not_import_it(stage):
    """MONAI's import costs ~1 s of CPU in every synthesize/evaluate start (CLI, torchrun rank, DataLoader
    worker); only ingest and training use its transforms."""
    out = subprocess.run([sys.executable, "-c", f"import sys, {stage}; print('monai' in sys.modules)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_stage_results_print_in_one_line(tmp_path):
    """A result in a notebook is a line saying what happened, not its tables (they stay attributes)."""
    import pandas as pd

    from xraymunit.evaluation.stage import EvaluationResult
    from xraymunit.ingestion.settings import IngestResult
    from xraymunit.synthesis.stage import SynthesisResult
    from xraymunit.training.stage import TrainResult

    big = {f"key{i}": list(range(50)) for i in range(40)}
    results = [
        IngestResult(tmp_path, 120, {"ok": 100, "excluded": 20}, {"truncated": 20}, 100, 0, True, report=big),
        TrainResult(tmp_path, tmp_path / "checkpoints" / "last.pt", 500, 12.5, {f"loss{i}": 0.1 for i in range(30)}),
        SynthesisResult(tmp_path, pd.DataFrame({"synth_key": [str(i) for i in range(1000)]}), 990, 10, 3.2),
        EvaluationResult({**big, "arms": ["real", "synthetic"], "seeds": 3, "levels": [{"name": "all"}],
                          "runs": [{}] * 6}, tmp_path),
    ]
    for result in results:
        text = repr(result)
        assert "\n" not in text and len(text) < 240, text
        assert str(tmp_path) in text
    assert "100 images from 120 files" in repr(results[0]) and "500 steps" in repr(results[1])
    assert "1000 images listed, 990 written now" in repr(results[2]) and "6 classifier runs" in repr(results[3])
    assert results[3]["seeds"] == 3 and isinstance(results[3], dict)  # still the metrics dict


def test_dir_lists_the_stages_and_the_translator_without_importing_them():
    code = ("import sys, xraymunit\n"
            "names = dir(xraymunit)\n"
            "print(sorted(n for n in names if not n.startswith('_')), 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "['Translator', 'evaluate', 'ingest', 'merge', 'synthesize', 'train'] False"


def test_stages_share_one_shape_progress_and_config_by_name():
    """One name for the progress switch; train and evaluate take a config object, a shipped name or a path,
    plus --set style overrides; synthesize's generated signature is annotated."""
    import inspect

    import xraymunit
    from xraymunit import config
    from xraymunit.config.evaluate import EvaluateConfig
    from xraymunit.config.train import TrainConfig

    for name in ("train", "synthesize", "evaluate"):
        params = inspect.signature(getattr(xraymunit, name)).parameters
        assert "progress" in params and "show_progress" not in params, name
    assert all(p.annotation is not inspect.Parameter.empty
               for p in inspect.signature(xraymunit.synthesize).parameters.values())
    for name in ("train", "evaluate"):
        params = inspect.signature(getattr(xraymunit, name)).parameters
        assert "config" in params and "overrides" in params, name

    by_name = config.resolve(TrainConfig, "munit_cxr_128_cpu", ["train.steps=7"])
    assert by_name.model.dim == 16 and by_name.train.steps == 7
    assert config.resolve(TrainConfig, config.find("munit_cxr_128_cpu")).train.steps == 100000
    given = EvaluateConfig()
    assert config.resolve(EvaluateConfig, given) is given
    assert config.resolve(EvaluateConfig, given, ["seeds=5"]).seeds == 5 and given.seeds != 5
    with pytest.raises(config.ConfigError, match="expected a TrainConfig"):
        config.resolve(TrainConfig, EvaluateConfig())
    with pytest.raises(config.ConfigError):
        config.resolve(TrainConfig, "no_such_config")
