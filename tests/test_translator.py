"""xraymunit.Translator: the images synthesize writes, from arrays, and one-line refusals of other inputs."""

import numpy as np
import pytest
import torch
from PIL import Image

import xraymunit
from xraymunit.io.cohort import Cohort
from xraymunit.synthesis.stage import synthesize
from xraymunit.synthesis.styles import load_reference
from xraymunit.translator import Translator, TranslatorInputError

HALF_STEP = 0.5 / 65535 + 1e-6  # a 16-bit PNG holds round(x * 65535)


@pytest.fixture(scope="module")
def sources(tiny):
    """The tiny cohort's first two train normals (image_key order, as synthesize --limit 2 takes them)."""
    cohort, ckpt = tiny
    rows = Cohort.open(cohort).select("train", "normal").sort_values("image_key").head(2)
    data = Cohort.open(cohort)
    return cohort, ckpt, list(rows["image_key"]), np.stack([data.image(i) for i in rows["cache_index"]])[:, None]


@pytest.fixture(scope="module")
def translator(tiny):
    return Translator.from_checkpoint(tiny[1], device="cpu")


def _pngs(out, manifest, key):
    rows = manifest[manifest["source_image_key"] == key].sort_values("style_index")
    return np.stack([np.asarray(Image.open(out / p)).astype(np.float64) / 65535 for p in rows["png_path"]])


@pytest.mark.parametrize("direction", ["a2b", "b2a"])
def test_translate_equals_synthesize_pngs(sources, translator, tmp_path, direction):
    cohort, ckpt, keys, images = sources
    if direction == "b2a":  # b2a's sources are the abnormal images
        data = Cohort.open(cohort)
        rows = data.select("train", "abnormal").sort_values("image_key").head(2)
        keys, images = list(rows["image_key"]), np.stack([data.image(i) for i in rows["cache_index"]])[:, None]
    res = synthesize(ckpt, cohort, tmp_path, n_styles=3, seed=7, limit=2, direction=direction, device="cpu",
                     progress=False)
    out = translator.translate(images, n_styles=3, seed=7, direction=direction, keys=keys)
    assert out.shape == (2, 3, 1, 32, 32) and out.dtype == np.float32
    for i, key in enumerate(keys):
        np.testing.assert_allclose(out[i, :, 0], _pngs(tmp_path, res.manifest, key), rtol=0, atol=HALF_STEP)
    assert np.abs(out[0, 0] - out[0, 1]).mean() > 1e-3  # styles differ: the equality is not of constants


def test_interpolate_and_reference_equal_synthesize(sources, translator, tmp_path):
    cohort, ckpt, keys, images = sources
    res = synthesize(ckpt, cohort, tmp_path / "i", interpolate=3, seed=1, limit=2, device="cpu", progress=False)
    out = translator.interpolate(images, steps=3, seed=1, keys=keys)
    np.testing.assert_allclose(out[1, :, 0], _pngs(tmp_path / "i", res.manifest, keys[1]), rtol=0, atol=HALF_STEP)
    data = Cohort.open(cohort)
    ref_rows = data.select("train", "abnormal").head(2)
    refs = []
    for n, idx in enumerate(ref_rows["cache_index"]):
        Image.fromarray((data.image(idx) * 65535).round().astype(np.uint16)).save(tmp_path / f"ref{n}.png")
        refs.append(tmp_path / f"ref{n}.png")
    res = synthesize(ckpt, cohort, tmp_path / "r", references=refs, limit=2, device="cpu", progress=False)
    as_read = np.stack([load_reference(r, 32) for r in refs])[:, None]  # arrays: already as the cohort holds them
    for given in (refs, as_read):
        out = translator.reference(images, given)
        assert out.shape == (2, 2, 1, 32, 32)
        np.testing.assert_allclose(out[0, :, 0], _pngs(tmp_path / "r", res.manifest, keys[0]), rtol=0,
                                   atol=HALF_STEP)


def test_deterministic_per_seed_and_shapes_follow_the_input(sources, translator):
    _, _, _, images = sources
    a = translator.translate(images, n_styles=2, seed=3)
    assert np.array_equal(a, translator.translate(images, n_styles=2, seed=3))
    assert not np.allclose(a, translator.translate(images, n_styles=2, seed=4))
    one = translator.translate(images[0, 0], n_styles=2, seed=3)  # (H, W) → (K, S, S); key "0" like image 0
    assert one.shape == (2, 32, 32) and np.array_equal(one, a[0, :, 0])
    t = translator.translate(torch.from_numpy(images), seed=3)
    assert isinstance(t, torch.Tensor) and torch.equal(t, torch.from_numpy(a[:, :1]))


def test_resizes_to_the_model_and_back_when_asked(sources, translator):
    _, _, _, images = sources
    big = torch.nn.functional.interpolate(torch.from_numpy(images), size=(48, 40), mode="bilinear").numpy()
    assert translator.translate(big).shape == (2, 1, 1, 32, 32)
    back = translator.translate(big, resize_back=True)
    assert back.shape == (2, 1, 1, 48, 40) and 0.0 <= back.min() and back.max() <= 1.0


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 3, 32, 32), np.float32), "3 channels"),
    (np.zeros((2, 32, 32), np.float32), "3 dimensions"),
    (np.full((1, 1, 32, 32), 255.0, np.float32), "values span 255..255"),
    (np.full((1, 1, 32, 32), -0.5, np.float32), "values span -0.5..-0.5"),
    (np.full((1, 1, 32, 32), np.nan, np.float32), "values span nan"),
    (np.zeros((1, 1, 32, 32), np.uint16), "dtype uint16"),
    ([[0.0, 1.0]], "a list is neither a numpy array nor a torch tensor"),
])
def test_inputs_outside_the_cohort_convention_are_one_line_errors(translator, bad, message):
    with pytest.raises(TranslatorInputError, match=message) as info:
        translator.translate(bad)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value) and "[0, 1]" in str(info.value)


def test_bad_arguments_are_clear(sources, translator):
    images = sources[3]
    with pytest.raises(ValueError, match="direction"):
        translator.translate(images, direction="x2y")
    with pytest.raises(ValueError, match="n_styles must be an integer from 1"):
        translator.translate(images, n_styles=0)
    with pytest.raises(TranslatorInputError, match="keys: 1 given for 2 images"):
        translator.translate(images, keys=["a"])


def test_exported_lazily_and_listed(translator):
    assert xraymunit.Translator is Translator and "Translator" in dir(xraymunit)
    assert set(dir(xraymunit)) >= {"ingest", "merge", "train", "synthesize", "evaluate", "__version__"}
    assert not {"exports", "lazy", "annotations", "listing"} & set(dir(xraymunit))
    assert "\n" not in repr(translator) and "normal ↔ abnormal" in repr(translator)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_equals_synthesize_on_cuda_and_returns_on_the_inputs_device(sources, tmp_path):
    cohort, ckpt, keys, images = sources
    res = synthesize(ckpt, cohort, tmp_path, n_styles=2, seed=5, limit=2, device="cuda", progress=False)
    gpu = Translator.from_checkpoint(ckpt, device="cuda")
    out = gpu.translate(torch.from_numpy(images).cuda(), n_styles=2, seed=5, keys=keys)
    assert out.device.type == "cuda"
    np.testing.assert_allclose(out[0, :, 0].cpu().numpy(), _pngs(tmp_path, res.manifest, keys[0]), rtol=0,
                               atol=HALF_STEP)


def test_a_checkpoint_of_the_first_layout_translates():
    """tests/fixtures/checkpoint_v1_tiny.pt: written before the inference keys left `config` (README there)."""
    from conftest import REPO

    old = Translator.from_checkpoint(REPO / "tests" / "fixtures" / "checkpoint_v1_tiny.pt", device="cpu")
    out = old.translate(np.full((1, 1, 32, 32), 0.5, np.float32), n_styles=2)
    assert out.shape == (1, 2, 1, 32, 32) and old.image_size == 32 and np.isfinite(out).all()
