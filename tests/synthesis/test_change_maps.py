"""A residual_mask model through train → checkpoint → synthesize --change-maps, and change maps of
an image-mode model; the monitor's "how global is the change" measures."""

import math

import numpy as np
import pytest
import torch
from helpers.evaluate_data import write_cohort
from helpers.training import tiny_train_config
from PIL import Image

from xraymunit.checkpoint import load_generators
from xraymunit.io.cohort import Cohort, SyntheticSet
from xraymunit.quality.training_monitor import change_measures
from xraymunit.synthesis.renderer import to_model_input
from xraymunit.synthesis.stage import synthesize
from xraymunit.training import train

RESIDUAL = ("model.output=residual_mask", "loss.identity=1", "loss.mask_sparsity=0.1", "loss.mask_smoothness=0.1",
            "loss.d_augment=[brightness,contrast,translation,cutout]", "loss.apa=0.2")


@pytest.fixture(scope="module")
def residual_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("residual")
    cohort = write_cohort(root / "cohort", n_patients=14, size=32)
    cfg = tiny_train_config("data.load_size=32", "data.crop_size=32", "train.steps=3", "train.quality_every=0",
                            "train.shortcut_test=false", *RESIDUAL)
    return cohort, train(cohort, root / "run", cfg, progress=False).checkpoint


def _png(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im).astype(np.float32) / 65535.0


def test_the_checkpoint_records_the_output_mode(residual_run, tiny):
    assert load_generators(residual_run[1]).model.output == "residual_mask"
    assert load_generators(tiny[1]).model.output == "image"


def test_change_maps_of_a_residual_model_are_its_masked_change(residual_run, tmp_path):
    cohort, ckpt = residual_run
    res = synthesize(ckpt, cohort, tmp_path / "s", n_styles=3, limit=2, precision="fp32", change_maps=True,
                     progress=False)
    m = res.manifest
    assert m["change_map_path"].notna().all() and len(m) == 6
    row = m.iloc[1]
    gens = load_generators(ckpt).gens
    src = Cohort.open(cohort).ok().set_index("image_key").loc[row["source_image_key"]]
    x = to_model_input(Cohort.open(cohort).image(src["cache_index"]), 32, torch.device("cpu"))
    with torch.no_grad():
        parts = gens.gen_b.decode_parts(gens.gen_a.encode_content(x), torch.tensor([row["style"]]).float(), x)
    expected = (parts.mask * parts.delta).abs()[0, 0].numpy() / 2
    assert np.abs(_png(tmp_path / "s" / row["change_map_path"]) - expected).max() < 2e-4  # 16-bit PNG
    translation = _png(tmp_path / "s" / row["png_path"])
    source = (x[0, 0].numpy() + 1) / 2
    assert np.all(np.abs(translation - source) <= expected + 2e-4)  # the clamp only shrinks the change
    assert (tmp_path / "s" / "synthesis.json").read_text().count('"residual_mask"') == 1


def test_change_maps_of_an_image_model_are_the_difference_to_the_input(tiny, tmp_path):
    cohort, ckpt = tiny
    res = synthesize(ckpt, cohort, tmp_path / "s", n_styles=2, limit=1, precision="fp32", change_maps=True,
                     progress=False)
    row = res.manifest.iloc[0]
    src = Cohort.open(cohort).ok().set_index("image_key").loc[row["source_image_key"]]
    source = Cohort.open(cohort).image(src["cache_index"])
    change = _png(tmp_path / "s" / row["change_map_path"])
    assert np.abs(change - np.abs(_png(tmp_path / "s" / row["png_path"]) - source)).max() < 2e-4
    synth = SyntheticSet.open(tmp_path / "s")
    assert np.array_equal(synth.change_map(synth.manifest.iloc[0], source), change)  # the grid reads this file


def test_without_the_flag_no_change_maps_are_written(tiny, tmp_path):
    cohort, ckpt = tiny
    res = synthesize(ckpt, cohort, tmp_path / "s", n_styles=2, limit=1, progress=False)
    assert res.manifest["change_map_path"].isna().all()
    assert not list((tmp_path / "s").rglob("*_change.png"))


def test_change_measures_compare_inside_and_outside_the_mask():
    src = torch.zeros(2, 1, 4, 4)
    out = src.clone()
    out[:, :, :2] = 0.5  # half the image changed by 0.5
    image_mode = change_measures(out, src, None)
    assert image_mode["a2b_mask_area"] == 0.5 and image_mode["a2b_change_inside"] == 0.5
    assert image_mode["a2b_change_outside"] == 0.0 and image_mode["a2b_change_mean"] == 0.25
    mask = torch.zeros_like(src)
    mask[:, :, :1] = 1.0  # the model's mask covers a quarter: the rest of its change lies outside
    masked = change_measures(out, src, mask)
    assert masked["a2b_mask_area"] == 0.25 and masked["a2b_change_inside"] == 0.5
    assert math.isclose(masked["a2b_change_outside"], 0.5 / 3, rel_tol=1e-6)
    soft = change_measures(out, src, mask * 0.4)  # a soft mask below 0.5 everywhere still has an inside
    assert math.isclose(soft["a2b_mask_area"], 0.1, rel_tol=1e-6) and soft["a2b_change_inside"] == 0.5
    assert soft["a2b_change_outside"] < 0.5


def test_reference_and_interpolated_synthesis_work_in_residual_mode(residual_run, tmp_path):
    cohort, ckpt = residual_run
    co = Cohort.open(cohort)
    abnormal = co.select("train", "abnormal").sort_values("image_key").head(2)
    refs = []
    for i, idx in enumerate(abnormal["cache_index"]):
        path = tmp_path / f"ref{i}.png"
        Image.fromarray((co.image(idx) * 255).astype(np.uint8)).save(path)
        refs.append(path)
    by_ref = synthesize(ckpt, cohort, tmp_path / "r", references=refs, limit=1, change_maps=True, progress=False)
    path = synthesize(ckpt, cohort, tmp_path / "i", interpolate=3, limit=1, change_maps=True, progress=False)
    for res, mode, n in ((by_ref, "reference", 2), (path, "interpolate", 3)):
        m = res.manifest
        assert len(m) == n and (m["style_mode"] == mode).all() and m["change_map_path"].notna().all()
    ends = [_png(tmp_path / "i" / p) for p in path.manifest.sort_values("interp_t")["png_path"]]
    assert not np.array_equal(ends[0], ends[-1])  # the path moves
