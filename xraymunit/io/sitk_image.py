"""SimpleITK where it is the better tool: a second DICOM decoder (GDCM) and physical-spacing resampling.

`read_with_simpleitk` is the fallback for files pydicom and its pixel plugins cannot decode
(GDCM knows codecs and vendor quirks they do not). GDCM hands back *modified* values — it
inverts MONOCHROME1 to MONOCHROME2 and applies RescaleSlope/Intercept — so both are undone
here: the caller gets the stored values, exactly what `dicom.read_stored_pixels` returns, and
runs the same Modality LUT / VOI / photometric chain on them.

`resample_to_spacing` puts an image on a grid of square pixels of a given size in mm with
ITK's resampler (smoothing first when it shrinks, so detector noise does not alias).
"""

from __future__ import annotations

import math
import os

import numpy as np

from xraymunit.errors import XraymunitError

# DICOM tags as GDCM's metadata dictionary spells them
_TAG = {"RescaleSlope": "0028|1053",
        "RescaleIntercept": "0028|1052", "PhotometricInterpretation": "0028|0004", "BitsStored": "0028|0101",
        "BitsAllocated": "0028|0100", "PixelRepresentation": "0028|0103"}


class SimpleITKReadError(XraymunitError):
    """SimpleITK (GDCM) could not read the file either, or it is not a single grayscale image."""


def load_simpleitk():
    """The SimpleITK module (ImportError when it is not installed)."""
    import SimpleITK as sitk  # imported on use: ~0.2 s, and most runs never need it

    return sitk


_sitk = load_simpleitk


def _numbers(reader, keyword: str) -> list[float]:
    """The numeric values of a tag (backslash-separated), [] when absent or not numbers."""
    key = _TAG[keyword]
    if not reader.HasMetaDataKey(key):
        return []
    try:
        return [float(v) for v in reader.GetMetaData(key).strip().split("\\") if v.strip()]
    except ValueError:
        return []


def header_spacing(path: str | os.PathLike) -> tuple[float, float] | None:
    """(row, col) mm by the one rule of `dicom_values.pixel_spacing` (pydicom reads the header; only
    the pixels need GDCM). Not GDCM's own spacing, which is 1.0 for a CR with PixelSpacing only."""
    import pydicom

    from xraymunit.io.dicom_values import pixel_spacing

    try:
        ds = pydicom.dcmread(os.fspath(path), stop_before_pixels=True, force=True)
    except Exception:  # noqa: BLE001 - a header pydicom cannot read has no spacing we trust
        return None
    row, col, _ = pixel_spacing(ds)
    return None if row is None else (row, col)


def _first(reader, keyword: str, default: float) -> float:
    values = _numbers(reader, keyword)
    return values[0] if values else default


def _stored_values(arr: np.ndarray, reader) -> np.ndarray:
    """Undo what GDCM did to the stored values: the rescale, then the MONOCHROME1 inversion
    (GDCM inverts over the BitsStored range, max + min - x, before rescaling)."""
    bits_allocated = int(_first(reader, "BitsAllocated", arr.dtype.itemsize * 8))
    bits_stored = int(_first(reader, "BitsStored", bits_allocated))
    signed = int(_first(reader, "PixelRepresentation", 0)) == 1
    slope = _first(reader, "RescaleSlope", 1.0) or 1.0
    intercept = _first(reader, "RescaleIntercept", 0.0)
    dtype = np.dtype(("i" if signed else "u") + str(max(1, bits_allocated // 8)))
    values = arr
    if slope != 1.0 or intercept != 0.0 or arr.dtype != dtype:
        values = np.rint((arr.astype(np.float64) - intercept) / slope)
    photometric = reader.GetMetaData(_TAG["PhotometricInterpretation"]).strip().upper() \
        if reader.HasMetaDataKey(_TAG["PhotometricInterpretation"]) else ""
    if photometric == "MONOCHROME1":
        lo, hi = (-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1) if signed else (0, (1 << bits_stored) - 1)
        values = (lo + hi) - values.astype(np.int64)
    return values.astype(dtype, copy=False)


def _reason(exc: BaseException) -> str:
    """ITK's multi-line exception text → its most telling line, without the C++ source location."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("Reason:"):
            return ln[len("Reason:"):].strip()
    tail = lines[-1] if lines else type(exc).__name__
    return tail.split("ITK ERROR:")[-1].strip()[:300]


def read_with_simpleitk(path: str | os.PathLike) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Decode a DICOM file with SimpleITK's GDCM ImageIO: (stored values, (row, col) spacing mm or None).

    The array is 2-D in the file's native integer type (uint8/uint16/int16/…, from BitsAllocated
    and PixelRepresentation): the raw stored values, no Modality LUT, rescale, VOI or inversion
    applied (GDCM's own rescale and MONOCHROME1 inversion are undone). Raises SimpleITKReadError
    when GDCM cannot read it or it is not one grayscale frame.
    """
    sitk = _sitk()
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(os.fspath(path))
    try:
        reader.ReadImageInformation()
        image = reader.Execute()
    except RuntimeError as exc:
        raise SimpleITKReadError(f"SimpleITK (GDCM) cannot decode {os.fspath(path)}: {_reason(exc)}") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise SimpleITKReadError(f"{os.fspath(path)}: {image.GetNumberOfComponentsPerPixel()} samples per "
                                 f"pixel; only grayscale radiographs are supported")
    arr = sitk.GetArrayViewFromImage(image)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise SimpleITKReadError(f"{os.fspath(path)}: pixel data of shape {arr.shape}; expected one 2-D frame")
    return _stored_values(np.array(arr), reader), header_spacing(path)


def antialias_sigma_mm(spacing: float, target: float) -> float:
    """Gaussian sigma (mm) to smooth with before shrinking pixels of `spacing` to `target` mm:
    (factor - 1) / 2 input pixels, scikit-image's rule; 0 when not shrinking."""
    return max(0.0, (target - spacing) / 2.0)


# the most pixels `resample_to_spacing` allocates, whoever calls it (ingest's header pass refuses far less:
# --max-side and the aspect rule applied to `resampled_shape`)
MAX_RESAMPLED_PIXELS = 1 << 28


def resampled_shape(shape: tuple[int, int], spacing_rc: tuple[float, float], target_mm: float) -> tuple[int, int]:
    """(rows, cols) of `shape` with (row, col) spacing in mm put on square `target_mm` pixels: the
    same physical extent. Arithmetic only (nothing allocated): what size guards check first."""
    h, w = shape
    sr, sc = (float(s) for s in spacing_rc)
    return max(1, round(h * sr / float(target_mm))), max(1, round(w * sc / float(target_mm)))


def resample_to_spacing(image: np.ndarray, spacing_rc: tuple[float, float], target_mm: float,
                        threads: int = 1) -> np.ndarray:
    """Resample a 2-D image with (row, col) pixel spacing in mm to square `target_mm` pixels.

    Corrects anisotropic pixels (row spacing != column spacing). Linear interpolation, after a
    per-axis Gaussian (`antialias_sigma_mm`) along every axis that shrinks. The new grid covers
    the same physical extent, centred; its edges take the nearest pixel (no constant fill), so
    the result stays a convex combination of input values (a [0, 1] image stays in [0, 1]).
    Returns float32; the input unchanged (as float32) when its spacing already is the target.
    ValueError, before allocating, when the result would have more than MAX_RESAMPLED_PIXELS.
    `threads`: ITK threads (1 suits ingest, which runs one process per core).
    """
    x = np.asarray(image)
    sr, sc = (float(s) for s in spacing_rc)
    target = float(target_mm)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {x.shape}")
    if not all(math.isfinite(v) and v > 0 for v in (sr, sc, target)):
        raise ValueError(f"spacings must be positive, got {spacing_rc} → {target_mm}")
    h, w = x.shape
    out_h, out_w = resampled_shape((h, w), (sr, sc), target)
    if out_h * out_w > MAX_RESAMPLED_PIXELS:
        raise ValueError(f"resampling {h}x{w} pixels of {sr:g}x{sc:g} mm to {target:g} mm gives {out_h}x{out_w} "
                         f"pixels, more than {MAX_RESAMPLED_PIXELS}")
    if math.isclose(sr, target, rel_tol=1e-9) and math.isclose(sc, target, rel_tol=1e-9):
        return x.astype(np.float32, copy=False)
    sitk = _sitk()
    img = sitk.GetImageFromArray(np.ascontiguousarray(x, dtype=np.float32))
    img.SetSpacing((sc, sr))  # ITK's axes are (x = column, y = row)
    sigmas = (antialias_sigma_mm(sc, target), antialias_sigma_mm(sr, target))
    if max(sigmas) > 0:
        smooth = sitk.DiscreteGaussianImageFilter()
        smooth.SetVariance([s * s for s in sigmas])
        smooth.SetUseImageSpacing(True)
        smooth.SetMaximumKernelWidth(1024)  # the default 32 truncates the kernel of a 10x shrink
        smooth.SetNumberOfThreads(threads)
        img = smooth.Execute(img)
    resample = sitk.ResampleImageFilter()
    resample.SetSize((out_w, out_h))
    resample.SetOutputSpacing((target, target))
    resample.SetOutputOrigin((((w - 1) * sc - (out_w - 1) * target) / 2.0, ((h - 1) * sr - (out_h - 1) * target) / 2.0))
    resample.SetInterpolator(sitk.sitkLinear)
    resample.SetUseNearestNeighborExtrapolator(True)
    resample.SetOutputPixelType(sitk.sitkFloat32)
    resample.SetNumberOfThreads(threads)
    return sitk.GetArrayFromImage(resample.Execute(img))
