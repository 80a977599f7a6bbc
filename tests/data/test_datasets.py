import numpy as np
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
        assert torch.equal(a[sid]["a"], b[sid]["a"]) and torch.equal(a[sid]["b"], b[sid]["b"])
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
