"""pipelines/cxr_equalized/change_maps.py: the measures that tell a drawn-in finding from a restyling."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines" / "cxr_equalized"))
try:
    import change_maps
finally:
    sys.path.pop(0)


def test_a_local_finding_is_small_and_concentrated():
    change = np.zeros((40, 40), np.float32)
    change[10:14, :] = 0.5  # a tenth of the image changed a lot, nothing else
    m = change_maps.image_measures(change)
    assert m["changed_area"] == pytest.approx(0.10)
    assert m["change_inside"] == pytest.approx(0.5) and m["change_outside"] == 0.0
    assert m["concentration"] == pytest.approx(1.0)


def test_a_restyling_is_everywhere_and_spread_out():
    m = change_maps.image_measures(np.full((40, 40), 0.1, np.float32))
    assert m["changed_area"] == 1.0 and m["change_inside"] == pytest.approx(0.1)
    assert m["concentration"] == pytest.approx(0.10)  # the top tenth of the pixels holds a tenth of the change


def test_style_overlap_separates_same_from_independent_change():
    rng = np.random.default_rng(0)
    one = rng.random((32, 32))
    assert change_maps.style_overlap(np.stack([one, one, one])) == pytest.approx(1.0)
    assert abs(change_maps.style_overlap(rng.random((6, 32, 32)))) < 0.1
