import numpy as np
import pydicom
from PIL import Image

from xraymunit.io import export

PROV = export.Provenance("abcd1234abcd1234", "f" * 64, 1000, "a2b", "random", 3, 7, "abnormal")


def test_png_is_16_bit_and_marked_synthetic(tmp_path):
    image = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(64, 48)
    path = export.write_png(tmp_path / "x.png", image, PROV)
    with Image.open(path) as im:
        arr = np.asarray(im)
        assert arr.dtype == np.uint16 and arr.shape == (64, 48)
        assert arr.min() == 0 and arr.max() == 65535
        assert im.info["Source"] == "synthetic" and "not an acquired" in im.info["Description"]
        assert im.info["xraymunit:synth_key"] == PROV.synth_key
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_dicom_is_a_synthetic_secondary_capture(tmp_path):
    image = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    path = export.write_dicom(tmp_path / "x.dcm", image, PROV, study_entropy="s", series_entropy="r",
                              rows_spacing_mm=0.5)
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == export.SECONDARY_CAPTURE == ds.file_meta.MediaStorageSOPClassUID
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert ds.ConversionType == "SYN"
    assert "xraymunit" in ds.DerivationDescription and PROV.checkpoint_sha256[:16] in ds.DerivationDescription
    assert "SYNTHETIC" in ds.ImageComments and ds.PatientIdentityRemoved == "YES"
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert np.array_equal(ds.pixel_array, export.to_uint16(image))
    assert ds.SOPInstanceUID.startswith("2.25.")
    # UIDs are derived from the provenance: the same output gets the same UID, another output another
    again = pydicom.dcmread(export.write_dicom(tmp_path / "y.dcm", image, PROV, study_entropy="s",
                                               series_entropy="r"))
    assert again.SOPInstanceUID == ds.SOPInstanceUID and again.StudyInstanceUID == ds.StudyInstanceUID
    other = export.Provenance("ffff0000ffff0000", *list(PROV.__dict__.values())[1:])
    third = pydicom.dcmread(export.write_dicom(tmp_path / "z.dcm", image, other, study_entropy="t",
                                               series_entropy="r"))
    assert third.SOPInstanceUID != ds.SOPInstanceUID and third.StudyInstanceUID != ds.StudyInstanceUID
