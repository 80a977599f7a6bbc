import numpy as np
import pytest
import torch

from xraymunit.data.datasets import DistributedStepSampler, DomainPicker, UnpairedDomains


def _images(n=10, size=32):
    rng = np.random.default_rng(0)
    return (rng.random((n, size, size)) * 65535).astype(np.uint16)


def test_batches_are_a_pure_function_of_the_sample_id():
    images = _images()
    a = UnpairedDomains(images, [0, 1, 2], [5, 6], 32, 24, seed=1, augment={"noise_std": 0.05})
    b = UnpairedDomains(images, [0, 1, 2], [5, 6], 32, 24, seed=1, augment={"noise_std": 0.05})
    for sid in (0, 7, 123):
        assert all(torch.equal(a[sid][k], b[sid][k]) for k in ("a", "b", "a_real", "b_real"))
    c = UnpairedDomains(images, [0, 1, 2], [5, 6], 32, 24, seed=2, augment={"noise_std": 0.05})
    assert not torch.equal(a[7]["a"], c[7]["a"])
    item = a[0]["a"]
    assert item.shape == (1, 24, 24) and type(item) is torch.Tensor
    assert item.min() >= -1 and item.max() <= 1


def test_each_epoch_visits_every_image_once_in_a_new_order():
    pick = DomainPicker(np.arange(10, 20), seed=0, domain="a")
    epoch0 = [pick(i) for i in range(10)]
    epoch1 = [pick(i) for i in range(10, 20)]
    assert sorted(epoch0) == list(range(10, 20)) == sorted(epoch1)
    assert epoch0 != epoch1


def test_domains_are_drawn_independently():
    images = _images()
    ds = UnpairedDomains(images, [0, 1, 2, 3], [0, 1, 2, 3], 32, 32, seed=0, augment={"enabled": False})
    same = sum(torch.equal(ds[i]["a"], ds[i]["b"]) for i in range(8))
    assert same < 8  # unpaired: A and B are not the same image in lockstep


def test_step_sampler_shards_steps_across_ranks_and_resumes():
    r0 = list(DistributedStepSampler(0, 3, batch_size=2, rank=0, world_size=2))
    r1 = list(DistributedStepSampler(0, 3, batch_size=2, rank=1, world_size=2))
    assert not set(r0) & set(r1)
    assert sorted(r0 + r1) == list(range(12))
    resumed = list(DistributedStepSampler(1, 3, batch_size=2, rank=0, world_size=2))
    assert resumed == r0[2:]


def _bright(n=6, size=32):
    """Images with no dark pixel (all in [0.4, 0.9]): any -1 in an output is padding."""
    rng = np.random.default_rng(1)
    return ((0.4 + 0.5 * rng.random((n, size, size))) * 65535).astype(np.uint16)


def _corners(x):
    return torch.stack([x[..., 0, 0], x[..., 0, -1], x[..., -1, 0], x[..., -1, -1]])


@pytest.mark.parametrize("padding", ["border", "zeros"])
def test_affine_padding_of_the_discriminator_reals(padding):
    rotate = {"prob": 1.0, "rotate_deg": 45.0, "scale": 0.0, "translate": 0.0, "padding": padding}
    ds = UnpairedDomains(_bright(), [0, 1, 2], [3, 4, 5], 32, 32, seed=0, augment=rotate)
    reals = torch.stack([ds[i][k] for i in range(12) for k in ("a_real", "b_real")])
    inputs = torch.stack([ds[i][k] for i in range(12) for k in ("a", "b")])
    if padding == "border":  # the edge pixels, never black
        assert reals.min() > -0.5 and inputs.min() > -1
    else:  # a large rotation uncovers black corners
        assert (_corners(reals) == -1).float().mean() > 0.5


def test_discriminator_reals_have_the_geometry_without_the_photometric_changes():
    images = _bright()
    default = UnpairedDomains(images, [0, 1, 2], [3, 4, 5], 32, 32, seed=3, augment={})
    noisy = UnpairedDomains(images, [0, 1, 2], [3, 4, 5], 32, 32, seed=3, augment={"noise_std": 0.05})
    geometry_only = UnpairedDomains(images, [0, 1, 2], [3, 4, 5], 32, 32, seed=3,
                                    augment={"gamma": (1.0, 1.0), "noise_std": 0.0})
    fired = 0
    for sid in range(24):
        pose = geometry_only[sid]
        assert pose["a"] is pose["a_real"]  # nothing photometric to leave out
        item, noisy_item = default[sid], noisy[sid]
        for k in ("a", "b"):
            # the same pose as the generator's input, with the intensities of the geometry alone
            assert torch.equal(item[f"{k}_real"], pose[k]) and torch.equal(noisy_item[f"{k}_real"], pose[k])
            if item[k] is item[f"{k}_real"]:
                continue  # no photometric transform fired: the same tensor
            fired += 1
            assert not torch.equal(item[k], item[f"{k}_real"])
            # the generator's input is a monotone intensity map (gamma) of the real: same pose
            order = item[f"{k}_real"].flatten().argsort()
            assert (item[k].flatten()[order].diff() >= -1e-6).all()
    assert 10 < fired < 38  # prob 0.5 for each of 48 images


def test_photometric_for_discriminator_gives_the_reals_the_same_changes():
    images = _bright()
    on = UnpairedDomains(images, [0, 1, 2], [3, 4, 5], 32, 32, seed=3,
                         augment={"prob": 1.0, "photometric_for_discriminator": True})
    geometry_only = UnpairedDomains(images, [0, 1, 2], [3, 4, 5], 32, 32, seed=3,
                                    augment={"prob": 1.0, "gamma": (1.0, 1.0)})
    for sid in range(6):
        item = on[sid]
        assert item["a"] is item["a_real"] and item["b"] is item["b_real"]
        assert not torch.equal(item["a_real"], geometry_only[sid]["a"])
