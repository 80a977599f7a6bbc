"""io/cohort.py: reading a cohort's cached images as arrays and as model-ready tensors."""

import numpy as np
import torch

from helpers.evaluate_data import write_cohort
from xraymunit.io.cohort import Cohort


def test_tensor_is_the_stack_area_shrunk_to_the_size(tmp_path):
    root = write_cohort(tmp_path / "cohort", n_patients=4, size=32)
    cohort = Cohort.open(root)
    idx = cohort.ok()["cache_index"].to_numpy()[[2, 0, 1]]
    full = cohort.tensor(idx)
    assert full.shape == (3, 1, 32, 32) and full.dtype == torch.float32
    assert np.array_equal(full[:, 0].numpy(), cohort.stack(idx))  # order kept, values untouched
    half = cohort.tensor(idx, 16)
    assert half.shape == (3, 1, 16, 16)
    block = cohort.stack(idx)[:, :2, :2].mean(axis=(1, 2))  # area = the mean of each 2×2 block
    assert np.allclose(half[:, 0, 0, 0].numpy(), block, atol=1e-6)
    assert float(half.min()) >= 0 and float(half.max()) <= 1
