"""A tiny trained checkpoint (32² images, 2 steps) and its cohort, shared by the synthesis tests."""

import pytest
from helpers.evaluate_data import write_cohort
from helpers.training import tiny_train_config


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    from xraymunit.training import train

    root = tmp_path_factory.mktemp("synth-tiny")
    cohort = write_cohort(root / "cohort", n_patients=14, size=32)
    cfg = tiny_train_config("data.load_size=32", "data.crop_size=32", "train.steps=2",
                            "train.quality_every=0", "train.shortcut_test=false")
    return cohort, train(cohort, root / "run", cfg, show_progress=False).checkpoint
