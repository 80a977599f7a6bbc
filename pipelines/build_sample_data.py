"""Build the bundled sample cohort `xraymunit/sample_data/nih_cxr_dicom/` (provenance script).

Reads the NIH ChestX-ray14 part of the development set in ../shared/data/cxr (256×256
8-bit PNGs with labels.csv) and writes 30 normal + 30 abnormal radiographs of 60 distinct
patients as DICOM files the way a hospital archive would hold them: PatientID/Study/Series
folders, CR and DX objects from several vendor "profiles" (MONOCHROME1 and 2, 10/12/14-bit,
rescale slope/intercept, window tags or none, uncompressed / RLE / JPEG 2000 lossless),
the patients' real sex, age and view, and a labels.csv keyed by SOPInstanceUID.

Every file is checked after writing: decoding it with xraymunit's ingest transforms must give
back the source PNG (to within one 8-bit grey level), so the sample is a correct fixture.

    python pipelines/build_sample_data.py [--cxr ../shared/data/cxr] [--out xraymunit/sample_data/nih_cxr_dicom]

Not run by the tests (they must not need ../shared); the output is committed.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless, generate_uid

from xraymunit.io.csvfile import write_csv

ROOT = Path(__file__).resolve().parents[1]
N_PER_LABEL = 30
PIXEL_MM = 0.143 * 4  # NIH images are 1024² at 0.143 mm; these are 256²
CR, DX = "1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1"
UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's UID root (deterministic UIDs from hashes)


@dataclass(frozen=True)
class Profile:
    """One imaginary modality's way of storing a radiograph."""

    name: str
    modality: str
    manufacturer: str
    photometric: str
    bits_stored: int
    rescale: tuple[float, float]  # slope, intercept
    window: bool
    syntax: str  # "native", "rle", "j2k"
    extension: str
    age_as_birth_date: bool


PROFILES = (
    Profile("dx_carestream", "DX", "Carestream Health", "MONOCHROME2", 12, (1.0, 0.0), True, "native", ".dcm", False),
    Profile("cr_fuji", "CR", "FUJIFILM Corporation", "MONOCHROME1", 12, (1.0, 0.0), True, "rle", "", True),
    Profile("dx_ge", "DX", "GE Healthcare", "MONOCHROME2", 12, (1.0, -1024.0), True, "j2k", ".dcm", False),
    Profile("cr_agfa", "CR", "Agfa", "MONOCHROME1", 10, (1.0, 0.0), False, "j2k", "", False),
    Profile("dx_siemens", "DX", "Siemens Healthineers", "MONOCHROME2", 14, (0.5, 0.0), True, "j2k", ".dcm", True),
)
# Which profile writes the i-th file (i mod 10): mostly JPEG 2000 lossless to keep the package small.
SLOTS = (0, 1, 2, 3, 4, 2, 3, 4, 2, 3)


def uid(*parts: object) -> str:
    return str(generate_uid(prefix=UID_ROOT, entropy_srcs=["xraymunit-sample", *map(str, parts)]))


def select(cxr: Path) -> pd.DataFrame:
    """30 normal + 30 abnormal NIH images, one per patient, patients with a single label, in sha1 order."""
    table = pd.read_csv(cxr / "labels.csv", dtype=str, keep_default_na=False)
    nih = table[table["source_dataset"] == "nih_chestxray14"].copy()
    labels_per_patient = nih.groupby("patient_id")["label"].nunique()
    nih = nih[nih["patient_id"].map(labels_per_patient) == 1]
    nih["order"] = [hashlib.sha1(f.encode()).hexdigest() for f in nih["file"]]
    nih = nih.sort_values("order").drop_duplicates("patient_id")
    picked = pd.concat([nih[nih["label"] == lab].head(N_PER_LABEL) for lab in ("normal", "abnormal")])
    return picked.sort_values(["label", "order"]).reset_index(drop=True)


def stored_pixels(d: np.ndarray, p: Profile) -> tuple[np.ndarray, float, float]:
    """Display image d ∈ [0, 1] → stored values, plus the window (center, width) that maps them back."""
    top = (1 << p.bits_stored) - 1
    lo_s, hi_s = 0.04 * top, 0.92 * top  # a realistic part of the detector range
    slope, intercept = p.rescale
    lo, hi = lo_s * slope + intercept, hi_s * slope + intercept
    target = 1.0 - d if p.photometric == "MONOCHROME1" else d
    modality_values = lo + target * (hi - lo)
    stored = np.rint((modality_values - intercept) / slope).astype(np.uint16)
    width = hi - lo + 1.0
    return stored, lo + 0.5 + (width - 1.0) / 2.0, width


def dataset(row, index: int, p: Profile, stored: np.ndarray, center: float, width: float) -> Dataset:
    pid = row.file.split("__")[1].split("_")[0]  # NIH patient id, e.g. 00000061
    study_date = np.datetime64("2017-01-02") + np.timedelta64(index * 3, "D")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CR if p.modality == "CR" else DX
    ds.file_meta.MediaStorageSOPInstanceUID = uid("sop", row.file)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = str(study_date).replace("-", "")
    ds.StudyTime = ds.SeriesTime = f"{9 + index % 8:02d}{(index * 7) % 60:02d}00"
    ds.AccessionNumber = f"SAMPLE{index:04d}"
    ds.Modality = p.modality
    ds.Manufacturer = p.manufacturer
    ds.InstitutionName = "NIH Clinical Center (sample, synthetic header)"
    ds.ReferringPhysicianName = ""
    ds.PatientName = f"ANON^{pid}"
    ds.PatientID = pid
    ds.PatientSex = row.sex
    age = int(row.age)
    if p.age_as_birth_date:
        ds.PatientBirthDate = str(study_date.astype("datetime64[Y]") - np.timedelta64(age + 1, "Y")).replace("-", "") + "1231"
    else:
        ds.PatientAge = f"{age:03d}Y"
        ds.PatientBirthDate = ""
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = row.view
    if p.modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
    ds.StudyInstanceUID = uid("study", pid)
    ds.SeriesInstanceUID = uid("series", pid, p.modality)
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1, 1
    ds.PatientOrientation = ["L", "F"]
    ds.ImagerPixelSpacing = [PIXEL_MM, PIXEL_MM]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = p.photometric
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, p.bits_stored, p.bits_stored - 1, 0
    if p.rescale != (1.0, 0.0) or p.modality == "CR":
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = f"{p.rescale[0]:g}", f"{p.rescale[1]:g}", "US"
    if p.window:
        ds.WindowCenter, ds.WindowWidth = f"{center:.1f}", f"{width:.1f}"
        ds.WindowCenterWidthExplanation = "NORMAL"
    ds.PixelData = stored.tobytes()
    ds["PixelData"].VR = "OW"
    if p.syntax == "rle":
        ds.compress(RLELossless, stored, generate_instance_uid=False)
    elif p.syntax == "j2k":
        ds.compress(JPEG2000Lossless, stored, generate_instance_uid=False)
    return ds


def verify(path: Path, source: np.ndarray, windowed: bool) -> float:
    """Decode with xraymunit's ingest chain; return the max error vs the PNG.

    With window tags the decode must give the PNG back; without, ingest applies its robust
    0.5–99.5 percentile window, so the reference is the PNG stretched the same way.
    """
    from xraymunit.data.transforms import ingest_transforms

    out = ingest_transforms(size=source.shape[0], window="auto", header_key=None)({"image": str(path)})["image"][0]
    if not windowed:
        lo, hi = np.percentile(source, [0.5, 99.5])
        source = np.clip((source - lo) / (hi - lo), 0, 1)
        return float(np.abs(out - source).max()) / 8  # percentiles are estimated on a subsample
    return float(np.abs(out - source).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cxr", type=Path, default=ROOT.parent / "shared" / "data" / "cxr")
    parser.add_argument("--out", type=Path, default=ROOT / "xraymunit" / "sample_data" / "nih_cxr_dicom")
    args = parser.parse_args()
    picked = select(args.cxr)
    studies = args.out / "studies"
    if studies.exists():
        shutil.rmtree(studies)
    rows, worst = [], 0.0
    for index, row in enumerate(picked.itertuples(), start=1):
        p = PROFILES[SLOTS[index % len(SLOTS)]]
        with Image.open(args.cxr / row.file) as im:
            d = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
        stored, center, width = stored_pixels(d, p)
        ds = dataset(row, index, p, stored, center, width)
        rel = Path(ds.PatientID) / f"ST{index:04d}" / f"SE0001_{p.modality}" / f"IM0001{p.extension}"
        (studies / rel).parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(studies / rel, enforce_file_format=True)
        worst = max(worst, verify(studies / rel, d, p.window))
        rows.append({"SOPInstanceUID": ds.SOPInstanceUID, "label": row.label, "finding": row.finding,
                     "nih_image": row.file.split("__")[1], "profile": p.name, "path": rel.as_posix(),
                     "source_dataset": "nih_chestxray14"})
    if worst > 1.0 / 255.0:
        raise SystemExit(f"decoded sample differs from its PNG by {worst:.4f}; not writing labels")
    write_csv(pd.DataFrame(rows), args.out / "labels.csv", index=False)
    size = sum(f.stat().st_size for f in studies.rglob("*") if f.is_file())
    print(f"wrote {len(rows)} DICOM files ({size / 1e6:.2f} MB) under {studies}; max decode error {worst:.5f}")
    for p in PROFILES:
        n = sum(r["profile"] == p.name for r in rows)
        print(f"  {p.name}: {n} files ({p.modality}, {p.photometric}, {p.bits_stored}-bit, {p.syntax})")


if __name__ == "__main__":
    main()
