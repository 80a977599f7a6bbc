"""Shareable header facts for the manifest: sex, age at the examination (capped), view, spacing…

No names, IDs or dates leave here: the age is derived, the birth date is never returned.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from pydicom.dataset import Dataset

from xraymunit.io.dicom_header import transfer_syntax
from xraymunit.io.dicom_values import clean_str, int_value, pixel_spacing, value

AGE_CAP = 90.0  # ages above 89 are identifying


def extract_metadata(ds: Dataset) -> dict[str, Any]:
    """Shareable header facts for the manifest: no names, IDs or dates (age is derived)."""
    sex = (clean_str(value(ds, "PatientSex")) or "").upper()
    row_mm, col_mm, spacing_source = pixel_spacing(ds)
    ts = transfer_syntax(ds)
    return {
        "modality": (clean_str(value(ds, "Modality")) or "").upper() or None,
        "sex": sex if sex in ("M", "F", "O") else None,
        "age": patient_age(ds),
        "view_position": (clean_str(value(ds, "ViewPosition")) or "").upper() or None,
        "body_part": (clean_str(value(ds, "BodyPartExamined")) or "").upper() or None,
        "manufacturer": clean_str(value(ds, "Manufacturer")),
        "photometric": (clean_str(value(ds, "PhotometricInterpretation")) or "").upper() or None,
        "bits_stored": int_value(ds, "BitsStored"),
        "transfer_syntax": ts.name if ts.is_transfer_syntax else str(ts),
        "rows": int_value(ds, "Rows"),
        "columns": int_value(ds, "Columns"),
        "spacing_row_mm": row_mm,
        "spacing_col_mm": col_mm,
        "spacing_source": spacing_source,
        # not a manifest column: ingest warns when raw detector ("FOR PROCESSING") images are present
        "presentation_intent": (clean_str(value(ds, "PresentationIntentType")) or "").upper() or None,
    }


_AGE_RE = re.compile(r"^\s*(\d{1,3})\s*([DWMY]?)\s*$", re.IGNORECASE)


def parse_age_string(value: str | None) -> float | None:
    """DICOM AS ('064Y', '018M', '003W', '010D') to years; None if malformed."""
    if not value:
        return None
    m = _AGE_RE.match(str(value))
    if not m:
        return None
    n = int(m.group(1))
    unit = (m.group(2) or "Y").upper()
    years = {"Y": n, "M": n / 12.0, "W": n * 7 / 365.25, "D": n / 365.25}[unit]
    return round(years, 2) if unit != "Y" else float(years)


def _parse_date(value: Any) -> _dt.date | None:
    s = re.sub(r"[^0-9]", "", str(value or ""))  # ACR-NEMA dates use dots: 1993.02.24
    if len(s) < 8:
        return None
    try:
        return _dt.date(int(s[:4]), int(s[4:6]), int(s[6:8]))
    except ValueError:
        return None


def patient_age(ds: Dataset) -> float | None:
    """Age in years at the examination, capped at 90 (ages above 89 are identifying).

    From PatientAge, else PatientBirthDate vs the study (or series/acquisition/content)
    date, in whole years. The birth date itself is never returned.
    """
    age = parse_age_string(clean_str(value(ds, "PatientAge")))
    if age is None:
        birth = _parse_date(value(ds, "PatientBirthDate"))
        exam = None
        for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
            exam = _parse_date(value(ds, keyword))
            if exam:
                break
        if birth and exam and exam >= birth:
            years = exam.year - birth.year - ((exam.month, exam.day) < (birth.month, birth.day))
            age = float(years)
    if age is None or age < 0 or age > 150:
        return None
    return min(age, AGE_CAP)
