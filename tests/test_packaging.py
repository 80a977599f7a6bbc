"""A plain `pip install .` works: the wheel carries LICENSE, py.typed and the configs (from the one
copy in configs/), and the installed `xraymunit` resolves a bare config name from any folder.

Nothing is downloaded: the wheel is built with --no-build-isolation, installed with --no-deps into
a fresh venv whose extra path (a .pth line) is this environment's site-packages, so torch & co.
come from here while xraymunit itself comes only from the wheel.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import REPO
from xraymunit import config

pytestmark = pytest.mark.slow  # ~20-40 s: a wheel build and a venv


def _run(cmd: list, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                          **kwargs)


def _source_copy(dest: Path) -> Path:
    """The tree as git would ship it (tracked + new, not ignored): no build/ or egg-info leaks in."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(src.read_bytes())
    return dest


@pytest.fixture(scope="module")
def wheel_build(tmp_path_factory) -> tuple[Path, str]:
    """The wheel and everything the build printed (-v: setuptools' own output, warnings included)."""
    src = _source_copy(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("wheel")
    r = _run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "-w", out, "."], src)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (built,) = out.glob("xraymunit-*.whl")
    return built, r.stdout + r.stderr


@pytest.fixture(scope="module")
def wheel(wheel_build) -> Path:
    return wheel_build[0]


# setuptools' warnings are classes (SetuptoolsDeprecationWarning, BuildBackendWarning, ...) printed by
# name; distutils' manifest warnings are "warning: no files found matching ...".
SETUPTOOLS_WARNING = re.compile(r"\w*Warning\b|warning: no (previously-included )?files")


def test_wheel_builds_without_setuptools_warnings(wheel_build):
    """The licence is an SPDX expression (no deprecated classifier) and the sample's data folders are
    package data, not packages setuptools would warn about one by one."""
    warnings = [line.strip() for line in wheel_build[1].splitlines() if SETUPTOOLS_WARNING.search(line)]
    assert warnings == []


def test_wheel_carries_notebooks_sample_and_spdx_licence(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.split("/")[-1] for n in names if n.startswith("xraymunit/notebooks/")}
    assert shipped == {p.name for p in (REPO / "notebooks").glob("*.ipynb")} and "augment_your_classifier.ipynb" in shipped
    sample = {n.removeprefix("xraymunit/sample_data/nih_cxr_dicom/") for n in names
              if n.startswith("xraymunit/sample_data/nih_cxr_dicom/")}
    in_git = {p.relative_to(REPO / "xraymunit/sample_data/nih_cxr_dicom").as_posix()
              for p in (REPO / "xraymunit/sample_data/nih_cxr_dicom").rglob("*") if p.is_file()}
    assert sample == in_git and "labels.csv" in sample and sum(n.startswith("studies/") for n in sample) == 60
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata and "Classifier: License ::" not in metadata
    assert "Provides-Extra: docs" in metadata


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("venv") / "fresh"
    r = _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], venv.parent)
    assert r.returncode == 0, r.stderr
    python = venv / "bin" / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        venv.parent).stdout.strip())
    # a plain path line: this environment's packages are importable, its .pth files (our editable
    # install among them) are not processed, so `import xraymunit` can only find the wheel's copy
    (purelib / "_dev_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    r = _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--ignore-installed",
              "--no-index", wheel], venv.parent)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return venv


def test_wheel_carries_license_py_typed_configs_and_sample(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)
    assert "xraymunit/py.typed" in names and "xraymunit/FORMATS.md" in names
    shipped = {n.split("/")[-1] for n in names if n.startswith("xraymunit/configs/")}
    assert shipped == {p.name for p in (REPO / "configs").glob("*.yaml")} and "munit_tiny_cpu.yaml" in shipped
    assert any(n.startswith("xraymunit/sample_data/nih_cxr_dicom/") for n in names)
    license_text = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("/LICENSE"))).decode()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for extra in ("test", "notebooks", "bench", "dev"):
        assert f"Provides-Extra: {extra}" in metadata
    assert "Classifier: Typing :: Typed" in metadata


def test_no_second_copy_of_the_configs_in_the_source_tree():
    assert not (REPO / "xraymunit" / "configs").exists()
    assert config.shipped_dir() == REPO / "configs"  # a source checkout reads configs/ itself


def test_installed_cli_resolves_a_bare_config_name_from_another_folder(fresh_venv, tmp_path):
    python, cli = fresh_venv / "bin" / "python", fresh_venv / "bin" / "xraymunit"
    where = _run([python, "-c", "import xraymunit, xraymunit.config as c; print(xraymunit.__file__); "
                                "print(c.find('munit_tiny_cpu')); print(c.find('configs/evaluate_tiny.yaml'))"],
                 tmp_path)
    assert where.returncode == 0, where.stderr
    package, tiny, evaluate = where.stdout.split()
    assert Path(package).is_relative_to(fresh_venv) and Path(tiny).is_relative_to(fresh_venv)
    assert tiny.endswith("xraymunit/configs/munit_tiny_cpu.yaml") and Path(evaluate).is_relative_to(fresh_venv)
    assert _run([cli, "train", "--help"], tmp_path).returncode == 0
    # the named config loads (a typo'd override is reported against it), nothing else is needed
    r = _run([cli, "train", "--config", "munit_tiny_cpu", "--cohort", "c", "--out", "o", "--set", "model.dimm=3"],
             tmp_path)
    assert r.returncode == 2 and "unknown config key 'model.dimm'" in r.stderr, r.stderr
    r = _run([cli, "pipeline", "--config", "no_such_config", "--out", "o"], tmp_path)  # the wheel's configs, of its kind
    assert r.returncode == 2 and "shipped pipeline configs: pipeline_default" in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()
    r = _run([cli, "train", "--config", "no_such_config", "--cohort", "c", "--out", "o"], tmp_path)
    assert r.returncode == 2 and "munit_tiny_cpu" in r.stderr and "pipeline_default" not in r.stderr, r.stderr


def test_config_lookup_path_then_name_then_error(tmp_path, monkeypatch):
    own = tmp_path / "munit_tiny_cpu.yaml"
    own.write_text("train: {steps: 3}\n")
    monkeypatch.chdir(tmp_path)
    assert config.find("munit_tiny_cpu.yaml") == Path("munit_tiny_cpu.yaml")  # an existing path wins
    assert config.find("munit_tiny_cpu") == REPO / "configs" / "munit_tiny_cpu.yaml"
    assert config.find("configs/evaluate_tiny.yaml") == REPO / "configs" / "evaluate_tiny.yaml"
    with pytest.raises(config.ConfigError, match="shipped config names: evaluate, evaluate_cpu") as exc:
        config.find("munit_tiny")
    assert "munit_tiny_cpu" in str(exc.value)
    with pytest.raises(config.ConfigError, match="config file not found"):
        config.find("elsewhere/munit_tiny_cpu.yaml")  # a path that does not exist is not a name


def test_library_code_never_switches_the_matplotlib_backend():
    """A notebook user's backend must survive importing and running xraymunit (figures are made with
    matplotlib.figure.Figure + FigureCanvasAgg; only scripts may choose a backend)."""
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "xraymunit").rglob("*.py")
                 if "matplotlib.use(" in p.read_text() or "switch_backend(" in p.read_text()]
    assert offenders == []
