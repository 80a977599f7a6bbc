"""A labels CSV's split column fixes patients' splits (e.g. an official test list); the rest are seeded."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from xraymunit.ingestion import ingest, merge
from xraymunit.ingestion.labels import LabelsError, load_labels
from xraymunit.ingestion.splits import fixed_patient_splits
from xraymunit.io.cohort import Cohort


def png_folder(tmp_path, patients=8, per_patient=2):
    """patients × per_patient random PNGs; the CSV rows (path, patient_id, label) in file order."""
    src = tmp_path / "pngs"
    src.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for p in range(patients):
        for i in range(per_patient):
            rel = f"p{p}_{i}.png"
            Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(src / rel)
            rows.append([rel, f"SECRET-PATIENT-{p}", "abnormal" if p % 2 else "normal"])
    return src, rows


def write_csv(path, rows, header="path,patient_id,label,split"):
    path.write_text(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    return path


def test_split_column_fixes_patients_and_the_rest_are_seeded(tmp_path):
    src, rows = png_folder(tmp_path)
    named = {0: "test", 1: "test", 2: "val", 3: "train"}  # patient → split; patients 4-7 left empty
    # patient 3 names its split on one image only: the whole patient follows it
    csv_rows = [r + [named.get(i // 2, "") if not (i // 2 == 3 and i % 2) else ""] for i, r in enumerate(rows)]
    out = tmp_path / "cohort"
    result = ingest(src, out, labels=write_csv(tmp_path / "labels.csv", csv_rows), size=32, progress=False)
    m = Cohort.open(out).manifest.set_index("patient_key")
    keys = load_keys(out)
    for p, split in named.items():
        assert set(m.loc[[keys[f"SECRET-PATIENT-{p}"]], "split"]) == {split}
    rest = [keys[f"SECRET-PATIENT-{p}"] for p in range(4, 8)]
    assert m.loc[rest, "split"].notna().all()
    fixed = result.report["splits_fixed_by_csv"]
    assert (fixed["patients"], fixed["images"], fixed["seeded_patients"], fixed["seeded_images"]) == (4, 8, 4, 8)
    assert fixed["csv_rows"] == 7 and fixed["by_split"] == {"train": 1, "val": 1, "test": 2}
    assert json.loads((out / "ingest_report.json").read_text())["splits_fixed_by_csv"] == fixed


def load_keys(out):
    keys = pd.read_parquet(out / "private" / "keys.parquet")
    return dict(zip(keys["patient_id"], keys["patient_key"]))


def test_a_fixed_split_survives_a_rerun_and_a_new_salt(tmp_path):
    src, rows = png_folder(tmp_path)
    csv = write_csv(tmp_path / "labels.csv", [r + ["test" if r[1].endswith(("-0", "-1")) else ""] for r in rows])
    splits = []
    for i, salt in enumerate(("a" * 64, "a" * 64, "b" * 64)):
        (tmp_path / f"salt{i}").write_text(salt)
        out = tmp_path / f"cohort{i}"
        ingest(src, out, labels=csv, size=32, salt_file=tmp_path / f"salt{i}", progress=False)
        m = Cohort.open(out).manifest.sort_values("cache_index")
        splits.append(list(m["split"]))
        keys = load_keys(out)
        test = set(m.loc[m["split"] == "test", "patient_key"])
        assert {keys["SECRET-PATIENT-0"], keys["SECRET-PATIENT-1"]} <= test
    assert splits[0] == splits[1]


def test_shards_merged_with_the_split_column_equal_a_single_run(tmp_path):
    src, rows = png_folder(tmp_path)
    csv = write_csv(tmp_path / "labels.csv", [r + ["test" if r[1].endswith("-2") else ""] for r in rows])
    salt = tmp_path / "salt"
    single = tmp_path / "single"
    ingest(src, single, labels=csv, size=32, salt_file=salt, progress=False)
    parts = [tmp_path / "s1", tmp_path / "s2"]
    for i, part in enumerate(parts, 1):
        ingest(src, part, size=32, shard=f"{i}/2", progress=False)
    result = merge(parts, tmp_path / "merged", labels=csv, salt_file=salt, progress=False)
    pd.testing.assert_frame_equal(pd.read_parquet(single / "manifest.parquet"),
                                  pd.read_parquet(tmp_path / "merged" / "manifest.parquet"))
    assert result.report["splits_fixed_by_csv"]["patients"] == 1


def test_conflicting_splits_of_one_patient_name_the_rows_not_the_patient(tmp_path):
    src, rows = png_folder(tmp_path)
    bad = [r + ["train" if i == 0 else "test" if i == 1 else ""] for i, r in enumerate(rows)]
    with pytest.raises(LabelsError, match=r"rows 1, 2 put one patient_id in different splits") as err:
        ingest(src, tmp_path / "cohort", labels=write_csv(tmp_path / "labels.csv", bad), size=32, progress=False)
    assert "SECRET" not in str(err.value)


def test_conflict_found_at_finalize_when_the_csv_has_no_patient_column():
    """The patient comes from the image headers: the two images' CSV rows name different splits."""
    with pytest.raises(LabelsError, match=r"test: rows 4; train: rows 2") as err:
        fixed_patient_splits([("k1", "train", 2), ("k1", "test", 4), ("k2", "val", 3)])
    assert "k1" not in str(err.value)
    assert fixed_patient_splits([("k1", "train", 2), ("k1", "train", 4), ("k2", "val", 3)]) == {"k1": "train", "k2": "val"}


@pytest.mark.parametrize("text,message", [
    ("path,label,split\na.png,normal,holdout\n", r"row 1, column 'split' must be train, val or test"),
    ("path,label,split\na.png,normal,train\na.png,normal,test\n", "rows 1, 2 give different splits"),
])
def test_bad_split_values_are_refused_when_the_csv_is_read(tmp_path, text, message):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(LabelsError, match=message) as err:
        load_labels(path)
    assert "holdout" not in str(err.value)


def test_split_values_are_normalised_and_empty_cells_fix_nothing(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("path,label,Split\na.png,normal, Validation\nb.png,normal,\nb.png,normal,TEST\n")
    table = load_labels(path)
    assert table.match("a.png", {})[0].split == "val"
    assert table.match("b.png", {})[0].split == "test"  # the row that names a split wins over the empty one
