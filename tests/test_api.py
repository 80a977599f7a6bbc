"""The public Python API: `xraymunit.<stage>(...)` calls the stage, however it was imported."""

import subprocess
import sys

import pytest

STAGES = ["ingest", "train", "synthesize", "evaluate"]


@pytest.mark.parametrize("stage", STAGES)
def test_stage_is_callable_before_and_after_importing_its_module(stage):
    code = (
        "import xraymunit, importlib\n"
        f"first = xraymunit.{stage}\n"
        f"assert callable(first) and first.__name__ == '{stage}'\n"
        f"importlib.import_module('xraymunit.{stage}')\n"
        f"import xraymunit.{stage}\n"
        f"assert callable(xraymunit.{stage})\n"
        f"from xraymunit.{stage} import {stage} as f\n"
        f"assert f.__module__ == 'xraymunit.{stage}'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_module_first_then_package_attribute_still_calls_the_stage(tmp_path):
    code = (
        "import xraymunit.synthesize\n"
        "import xraymunit\n"
        "try:\n"
        f"    xraymunit.synthesize('{tmp_path}/missing.pt', '{tmp_path}', '{tmp_path}/out')\n"
        "except Exception as exc:\n"
        "    assert 'checkpoint not found' in str(exc), exc\n"
        "else:\n"
        "    raise SystemExit('expected an error')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_is_cheap():
    out = subprocess.run([sys.executable, "-c", "import sys, xraymunit; print('torch' in sys.modules)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
