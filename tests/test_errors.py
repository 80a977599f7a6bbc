"""errors.py: the user-fixable error base and the unwrapping of wrapped errors."""

from xraymunit.errors import root_cause


def test_root_cause_unwraps_monai_style_wrapping_and_stops_on_cycles():
    inner = ValueError("not a DICOM file")
    try:
        try:
            raise inner
        except ValueError as exc:
            raise RuntimeError("applying transform <LoadRadiographd object at 0x1>") from exc
    except RuntimeError as wrapped:
        assert root_cause(wrapped) is inner
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__cause__, b.__cause__ = b, a
    assert root_cause(a) in (a, b)  # a cycle ends instead of looping
