"""Patient-level splits: stratified by label and source, deterministic from the salt, both labels everywhere."""

import pandas as pd
import pytest

from xraymunit.errors import XraymunitError
from xraymunit.ingestion import splits
from xraymunit.ingestion.keys import Pseudonymiser


def patients(spec):
    """spec: list of (label, source, count) → patient table."""
    rows = []
    for label, source, n in spec:
        rows += [{"patient_key": f"{label}-{source}-{i}", "label": label, "source": source} for i in range(n)]
    return pd.DataFrame(rows)


def counts(split_of, table):
    df = table.assign(split=table["patient_key"].map(split_of))
    return df.groupby(["label", "split"]).size().unstack(fill_value=0)


def test_tiny_cohort_gets_both_labels_in_every_split():
    table = patients([("normal", "a", 3), ("abnormal", "a", 3)])
    split_of = splits.assign_splits(table, Pseudonymiser(b"s" * 32))
    c = counts(split_of, table)
    assert (c.loc[:, list(splits.SPLITS)] >= 1).all().all()


def test_many_tiny_sources_still_add_up_to_the_fractions():
    table = patients([("abnormal", f"src{i}", 1) for i in range(20)] + [("normal", "big", 40)])
    split_of = splits.assign_splits(table, Pseudonymiser(b"s" * 32))
    c = counts(split_of, table)
    assert list(c.loc["abnormal", list(splits.SPLITS)]) == [14, 3, 3]
    assert list(c.loc["normal", list(splits.SPLITS)]) == [28, 6, 6]


def test_stratified_by_source_and_deterministic_from_salt():
    table = patients([("normal", "nih", 200), ("normal", "covid", 100), ("abnormal", "nih", 100), ("abnormal", "covid", 60)])
    s1 = splits.assign_splits(table, Pseudonymiser(b"1" * 32))
    assert s1 == splits.assign_splits(table.sample(frac=1, random_state=0), Pseudonymiser(b"1" * 32))
    s2 = splits.assign_splits(table, Pseudonymiser(b"2" * 32))
    assert s1 != s2
    df = table.assign(split=table["patient_key"].map(s1))
    for (label, source), g in df.groupby(["label", "source"]):
        frac = g["split"].value_counts(normalize=True)
        assert abs(frac["train"] - 0.7) < 0.02 and abs(frac["test"] - 0.15) < 0.02, (label, source)


def test_zero_val_fraction_and_bad_fractions():
    table = patients([("normal", "a", 10)])
    split_of = splits.assign_splits(table, Pseudonymiser(b"s" * 32), (0.8, 0.0, 0.2))
    assert set(split_of.values()) == {"train", "test"}
    for bad in [(0.5, 0.5), (0.7, 0.2, 0.2), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1)]:
        with pytest.raises(XraymunitError, match="split fractions"):
            splits.check_fractions(bad)


def test_patient_label_priority():
    rows = pd.DataFrame({"patient_key": ["p", "p", "q", "r", "r"],
                         "label": ["normal", "abnormal", None, "normal", "pneumonia"],
                         "source_dataset": ["a", "a", None, "b", "b"]})
    t = splits.patient_table(rows).set_index("patient_key")
    assert t.loc["p", "label"] == "abnormal" and t.loc["q", "label"] == "unlabelled" and t.loc["r", "label"] == "pneumonia"
