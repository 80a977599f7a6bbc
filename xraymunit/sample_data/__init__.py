"""The bundled sample cohort: 60 real NIH ChestX-ray14 radiographs stored as a hospital's DICOM studies.

    xraymunit ingest "$(python -c 'import xraymunit.sample_data as s; print(s.path())')" \
        --labels "$(python -c 'import xraymunit.sample_data as s; print(s.labels_csv())')" --out cohort/

Works from a source checkout and from an installed wheel (the files are package data).
See nih_cxr_dicom/README.md for the source, citation, terms and how the files were made.
"""

from __future__ import annotations

from pathlib import Path

NAME = "nih_cxr_dicom"
_ROOT = Path(__file__).resolve().parent / NAME


def root() -> Path:
    """The sample folder (README.md, labels.csv, studies/)."""
    return _ROOT


def path() -> Path:
    """The DICOM folder to ingest: PatientID/Study/Series/file, 30 normal + 30 abnormal patients."""
    return _ROOT / "studies"


def labels_csv() -> Path:
    """labels.csv keyed by SOPInstanceUID (also has a `path` column relative to `path()`)."""
    return _ROOT / "labels.csv"


def readme() -> Path:
    return _ROOT / "README.md"
