"""Shared pytest setup and the one end-to-end run of the README's default pipeline.

`default_run` runs pipelines/normal_to_abnormal.py with configs/pipeline_default.yaml, exactly
as the README's main command does (on the bundled DICOM sample), once per test session;
the pipeline tests and the notebook tests read its outputs.
"""

import os
import sys
from pathlib import Path

import pytest

# tests/run.sh runs the suite in pytest-xdist workers, one per core: each worker's torch gets one thread
# (XRAYMUNIT_TEST_THREADS to change it): two 2-thread workers would oversubscribe 2 cores.
# Workers inherit the controller's environment, so theirs is set, not defaulted. A plain `pytest`: 2.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = os.environ.get("XRAYMUNIT_TEST_THREADS", "1")
else:
    os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """Under xdist, every test of the default run goes to one worker (`--dist loadgroup`): the README's job
    then runs once per session, not once per worker, and no two workers share its folder."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if "default_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("default_run"))


@pytest.fixture(scope="session")
def default_run(tmp_path_factory) -> Path:
    """OUT folder of a full default pipeline run (cohort/, train/, synth/, report/)."""
    sys.path.insert(0, str(REPO / "pipelines"))
    try:
        import normal_to_abnormal
    finally:
        sys.path.remove(str(REPO / "pipelines"))
    _one_default_run_per_session(tmp_path_factory)
    out = tmp_path_factory.mktemp("default-run")
    code = normal_to_abnormal.main(["--config", str(REPO / "configs" / "pipeline_default.yaml"),
                                    "--out", str(out), "--no-progress"])
    assert code == 0, "the default pipeline run failed"
    return out


def _one_default_run_per_session(tmp_path_factory) -> None:
    """Under xdist the README's job must run on one worker only (it is the suite's longest item): a second
    worker computing it means the default-run group was lost (pytest-xdist's loadgroup sees no groups
    under pytest 9.2, hence the pin in setup.cfg) — fail loudly instead of silently doubling the suite."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    owner = tmp_path_factory.getbasetemp().parent / "default_run.owner"  # shared by the session's workers
    try:
        fd = os.open(owner, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pytest.fail(f"the default run was already computed by {owner.read_text()} and now by {worker}: "
                    "the xdist_group 'default_run' was not honoured (see setup.cfg's pytest pin)")
    os.write(fd, worker.encode())
    os.close(fd)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A tiny trained checkpoint (32² images, 2 steps) and its cohort, shared by the synthesis tests."""
    from helpers.evaluate_data import write_cohort
    from helpers.training import tiny_train_config
    from xraymunit.training import train

    root = tmp_path_factory.mktemp("synth-tiny")
    cohort = write_cohort(root / "cohort", n_patients=14, size=32)
    cfg = tiny_train_config("data.load_size=32", "data.crop_size=32", "train.steps=2",
                            "train.quality_every=0", "train.shortcut_test=false")
    return cohort, train(cohort, root / "run", cfg, progress=False).checkpoint
