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
