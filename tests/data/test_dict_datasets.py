"""xraymunit.data.CohortDataset / SyntheticDataset / mix: MONAI-style dicts with evaluate's selection rules."""

import numpy as np
import pytest
from helpers.evaluate_data import write_cohort, write_synthetic
from monai.data import DataLoader
from monai.transforms import Lambdad

from xraymunit.data import CohortDataset, SyntheticDataset, mix
from xraymunit.data.dict_datasets import DatasetError
from xraymunit.io.cohort import Cohort

KEYS = {"image", "label", "patient_key", "image_key", "source_image_key", "split", "synthetic"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("dicts")
    cohort = write_cohort(root / "cohort", n_patients=12, size=32)
    return cohort, write_synthetic(root / "synth", cohort, n_styles=2, size=32)


def test_cohort_dataset_gives_the_split_as_dicts(folders):
    cohort, _ = folders
    data = Cohort.open(cohort)
    rows = data.select("train").sort_values("image_key")
    ds = CohortDataset(cohort, split="train")
    assert len(ds) == len(rows) and ds.image_size == 32
    item = ds[0]
    assert set(item) == KEYS and item["synthetic"] is False and item["split"] == "train"
    assert item["image"].shape == (1, 32, 32) and item["image"].dtype.is_floating_point
    np.testing.assert_array_equal(item["image"][0].numpy(), data.image(rows["cache_index"].iloc[0]))
    assert item["image_key"] == rows["image_key"].iloc[0] and item["patient_key"] == rows["patient_key"].iloc[0]
    test = CohortDataset(cohort, split="test")
    assert len(test) > 0 and {test[i]["split"] for i in range(len(test))} == {"test"}
    assert len(CohortDataset(cohort, split="all")) == len(data.ok())
    only = CohortDataset(cohort, labels=["normal"])
    assert {only[i]["label"] for i in range(len(only))} == {"normal"}
    assert CohortDataset(cohort, size=16)[0]["image"].shape == (1, 16, 16)
    assert "\n" not in repr(ds) and "images" in repr(ds)


def test_synthetic_dataset_keeps_only_translations_of_train_patients(folders):
    cohort, synth = folders
    data = Cohort.open(cohort)
    all_rows = SyntheticDataset(synth, split="all").rows
    assert set(all_rows["split"]) == {"train", "val", "test"}  # the fixture holds held-out translations
    ds = SyntheticDataset(synth)
    assert set(ds.rows["split"]) == {"train"} and 0 < len(ds) < len(all_rows)
    strict = SyntheticDataset(synth, cohort=cohort)  # + evaluate's rules: the unknown source is dropped too
    train_patients = set(data.select("train")["patient_key"])
    assert set(strict.rows["source_patient_key"]) <= train_patients and len(strict) < len(ds)
    assert strict.excluded.get("source not found in the cohort", 0) >= 1
    item = strict[0]
    assert set(item) == KEYS and item["synthetic"] is True and item["label"] == "abnormal"
    assert item["patient_key"] == strict.rows["source_patient_key"].iloc[0]  # the source's patient


def test_mix_reaches_the_fraction_and_collates_with_a_transform(folders):
    cohort, synth = folders
    double = Lambdad("image", lambda x: x * 2)  # both: a MONAI transform makes MetaTensors, a batch holds one kind
    real, fake = CohortDataset(cohort, transform=double), SyntheticDataset(synth, cohort=cohort, transform=double)
    mixed = mix(real, fake, synthetic_fraction=0.25, seed=3)
    n_synth = len(mixed) - len(real)
    assert n_synth == round(len(real) / 3) and n_synth > 0
    assert [mixed[i]["image_key"] for i in range(len(mixed))] == \
        [mix(real, fake, 0.25, seed=3)[i]["image_key"] for i in range(len(mixed))]  # seeded
    batch = next(iter(DataLoader(mixed, batch_size=len(mixed))))
    assert batch["image"].shape == (len(mixed), 1, 32, 32) and sum(batch["synthetic"].tolist()) == n_synth
    assert float(batch["image"].max()) > 1.0  # the transform ran


def test_mix_refuses_what_it_cannot_honour(folders):
    cohort, synth = folders
    real, fake = CohortDataset(cohort), SyntheticDataset(synth, cohort=cohort)
    with pytest.raises(DatasetError, match="needs .* synthetic ones; there are"):
        mix(real, fake, synthetic_fraction=0.95)
    with pytest.raises(DatasetError, match="different sides"):
        mix(CohortDataset(cohort, size=16), fake, 0.2)
    with pytest.raises(DatasetError, match=r"in \[0, 1\)"):
        mix(real, fake, 1.0)
    with pytest.raises(DatasetError, match="split must be one of"):
        CohortDataset(cohort, split="training")


def test_a_selection_of_nothing_is_an_error_that_names_what_exists(folders):
    """An empty dataset would only fail later, in a DataLoader, with no hint why."""
    cohort, synth = folders
    with pytest.raises(DatasetError, match=r"\['Normal'\] not in the cohort .*its labels: \['abnormal', 'normal'\]"):
        CohortDataset(cohort, labels=["Normal"])
    assert len(CohortDataset(cohort, labels="normal")) == len(CohortDataset(cohort, labels=["normal"]))
    with pytest.raises(DatasetError, match="translations of val/test patients never enter a training set"):
        SyntheticDataset(synth, cohort=cohort, split="val")
    real = CohortDataset(cohort)
    mixed = mix(real, SyntheticDataset(synth, cohort=cohort), 0.25)
    assert repr(mixed) == (f"MixedDataset({len(real)} real + {len(mixed) - len(real)} synthetic = {len(mixed)} items, "
                           f"{(len(mixed) - len(real)) / len(mixed):.0%} synthetic)")
