"""quality.csv's reader side (xraymunit/quality/quality_csv.py): the best.pt score, and no torch,
so reports and notebooks read it anywhere."""

import subprocess
import sys

import pytest

from xraymunit.quality import quality_csv


def test_score_criterion():
    row = {"a2b_success": 0.5, "a2b_success_real_abnormal": 0.8, "a2b_fd": 2.0, "a2b_fd_inputs": 4.0,
           "a2b_diversity_lpips": 0.3, "real_b_pairs_lpips": 0.6, "a2b_content_ssim": 0.8,
           "content_ssim_unrelated": 0.5}
    assert quality_csv.quality_score(row) == pytest.approx((0.5 / 0.8 + 0.5 + 0.5) / 3)
    assert quality_csv.quality_score({**row, "a2b_content_ssim": 0.4}) == 0.0  # anatomy lost: never best


def test_reading_quality_csv_imports_neither_torch_nor_the_judge():
    """The quality package imports none of its torch modules eagerly: quality_csv alone stays light."""
    code = ("import sys, xraymunit.quality.quality_csv; "
            "sys.exit(sorted(m for m in ('torch', 'monai', 'xraymunit.quality.judge') if m in sys.modules) or 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
