"""xraymunit.transforms.RandTranslated: MONAI's randomness, the Translator's images, DataLoader workers."""

import pickle

import numpy as np
import pytest
import torch
from monai.transforms import Compose
from torch.utils.data import DataLoader, Dataset

from xraymunit import checkpoint as checkpoints
from xraymunit import transforms
from xraymunit.io.cohort import Cohort
from xraymunit.transforms import RandTranslated
from xraymunit.translator import Translator


@pytest.fixture(scope="module")
def items(tiny):
    """Eight dicts of the tiny cohort's train split: four normal, four abnormal."""
    data = Cohort.open(tiny[0])
    rows = [data.select("train", label).sort_values("image_key").head(4) for label in ("normal", "abnormal")]
    return [{"image": torch.from_numpy(data.image(r.cache_index))[None], "label": r.label, "key": r.image_key}
            for part in rows for r in part.itertuples()]


def _run(transform, items):
    return [transform(dict(d)) for d in items]


def test_prob_0_is_the_identity_and_prob_1_translates_every_normal(tiny, items):
    untouched = _run(RandTranslated("image", tiny[1], prob=0.0), items)
    assert all(torch.equal(o["image"], i["image"]) and o["label"] == i["label"] and not o["translated"]
               and o["translation_seed"] == -1 for o, i in zip(untouched, items))
    done = _run(RandTranslated("image", tiny[1], prob=1.0), items)
    for o, i in zip(done, items):
        if i["label"] == "normal":
            assert o["label"] == "abnormal" and o["translated"] and o["translation_seed"] >= 0
            assert o["image"].shape == (1, 32, 32) and not torch.allclose(o["image"], i["image"], atol=1e-3)
        else:  # abnormal images are never touched
            assert o["label"] == "abnormal" and not o["translated"] and torch.equal(o["image"], i["image"])


def test_set_random_state_reproduces_a_run_and_another_seed_differs(tiny, items):
    def run(seed):
        return _run(Compose([RandTranslated("image", tiny[1], prob=0.5)]).set_random_state(seed=seed), items)

    a, b, c = run(0), run(0), run(1)
    assert [o["translated"] for o in a] == [o["translated"] for o in b]
    assert all(torch.equal(x["image"], y["image"]) for x, y in zip(a, b))
    assert [o["translation_seed"] for o in a] != [o["translation_seed"] for o in c]


def test_the_image_is_the_translators_for_its_style_seed(tiny, items):
    for batch_size in (None, 1):  # synthesize's default, and the fast setting for one style per call
        out = _run(RandTranslated("image", tiny[1], prob=1.0, device="cpu", batch_size=batch_size), items[:2])
        translator = Translator.from_checkpoint(tiny[1], device="cpu", batch_size=batch_size)
        for o, i in zip(out, items):
            same = translator.translate(i["image"][0].numpy(), n_styles=1, seed=o["translation_seed"])
            np.testing.assert_array_equal(o["image"].numpy(), same)


def test_generator_loaded_once_per_process_and_not_pickled(tiny, items, monkeypatch):
    calls = []
    real = checkpoints.load_generators
    monkeypatch.setattr(checkpoints, "load_generators", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(transforms, "_TRANSLATORS", {})
    first, second = RandTranslated("image", tiny[1], prob=1.0), RandTranslated("image", tiny[1], prob=1.0)
    _run(first, items[:2]), _run(second, items[:2])
    assert len(calls) == 1
    assert len(pickle.dumps(first)) < 10_000  # the path, not the networks


class _Items(Dataset):
    def __init__(self, items, transform):
        self.items, self.transform = items, transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.transform(dict(self.items[i]))


def test_works_in_dataloader_workers(tiny, items):
    loader = DataLoader(_Items(items, RandTranslated("image", tiny[1], prob=1.0)), batch_size=4, num_workers=2)
    batches = list(loader)
    labels = [label for b in batches for label in b["label"]]
    assert labels == ["abnormal"] * 8 and sum(int(t) for b in batches for t in b["translated"]) == 4
    assert all(b["image"].shape == (4, 1, 32, 32) for b in batches)


def test_workers_and_epochs_draw_their_own_numbers_and_a_seeded_run_repeats(tiny, items):
    """A plain torch DataLoader hands every worker a copy of the transform, random state included: the
    workers' draws must still differ from each other and from one epoch to the next."""
    normals = [d for d in items if d["label"] == "normal"] * 2  # eight normal items, two per batch

    def seeds():
        torch.manual_seed(0)  # torch derives each epoch's worker seeds from this
        transform = RandTranslated("image", tiny[1], prob=1.0)
        transform.set_random_state(seed=0)
        loader = DataLoader(_Items(normals, transform), batch_size=2, num_workers=2)
        return [int(s) for _ in range(2) for b in loader for s in b["translation_seed"]]

    first = seeds()
    assert len(first) == 16 and len(set(first)) == 16  # no worker or epoch repeats another's draws
    assert seeds() == first  # the same torch seed and random state repeat the run


def test_repr_is_one_line(tiny):
    text = repr(RandTranslated("image", tiny[1], prob=0.3))
    assert "\n" not in text and "prob=0.3" in text and "'normal' -> 'abnormal'" in text


def test_clear_errors(tiny, items, tmp_path):
    with pytest.raises(checkpoints.CheckpointError, match="checkpoint not found"):
        RandTranslated("image", tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="prob must be in"):
        RandTranslated("image", tiny[1], prob=1.5)
    with pytest.raises(ValueError, match="different kinds"):  # integer labels need from_label=0, to_label=1
        RandTranslated("image", tiny[1], prob=1.0)({"image": items[0]["image"], "label": torch.tensor(0)})
    out = RandTranslated("image", tiny[1], prob=1.0, from_label=0, to_label=1)(
        {"image": items[0]["image"], "label": torch.tensor(0)})
    assert out["translated"] and torch.equal(out["label"], torch.tensor(1))
