"""The pretrained backbone: loads torchvision-layout DenseNet-121 files the test writes, computes what the
layout defines (checked against a forward pass written here from the key names alone), refuses the rest."""

import re

import pytest
import torch
import torch.nn.functional as F

from helpers.densenet_weights import BLOCKS, densenet121_state
from xraymunit.quality import backbone as B


def reference_embedding(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """torchvision's DenseNet forward, read off the key names: the pooled features torchxrayvision calls features2."""
    def bn(h, p):
        return F.batch_norm(h, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                            training=False, eps=1e-5)

    h = F.max_pool2d(F.relu(bn(F.conv2d(x, sd["features.conv0.weight"], stride=2, padding=3), "features.norm0")),
                     3, 2, 1)
    for b, n in enumerate(BLOCKS, 1):
        for i in range(n):
            p = f"features.denseblock{b}.denselayer{i + 1}"
            y = F.conv2d(F.relu(bn(h, f"{p}.norm1")), sd[f"{p}.conv1.weight"])
            y = F.conv2d(F.relu(bn(y, f"{p}.norm2")), sd[f"{p}.conv2.weight"], padding=1)
            h = torch.cat([h, y], 1)
        if b < len(BLOCKS):
            p = f"features.transition{b}"
            h = F.avg_pool2d(F.conv2d(F.relu(bn(h, f"{p}.norm")), sd[f"{p}.conv.weight"]), 2)
    return F.relu(bn(h, "features.norm5")).mean((2, 3))


def images(n=3, size=64, seed=1):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


def assert_close_relative(a, b, tol=1e-4):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    assert ((a - b).abs().max() / b.abs().max()).item() < tol


def test_a_torchxrayvision_file_gives_the_layouts_features(tmp_path):
    sd = densenet121_state(in_channels=1)
    sd["op_threshs"] = torch.rand(18)  # torchxrayvision's buffer: ignored, as the classifier is
    path = tmp_path / "xrv-densenet121.pt"
    torch.save(sd, path)

    net = B.load_backbone(path, image_size=64)
    x = images()
    assert net.convention == "torchxrayvision" and net.sha256 == B.file_sha256(path)
    expected = reference_embedding(sd, (2 * x - 1) * 1024)  # torchxrayvision's [-1024, 1024]
    got = net.embed(x)
    assert got.shape == (3, 1024)
    assert_close_relative(got, expected)
    maps = net.feature_maps(x)
    assert [m.shape[1] for m in maps] == [64, 256, 512, 1024, 1024]
    assert [m.shape[-1] for m in maps] == [16, 16, 8, 4, 2]


def test_resizes_to_its_image_size(tmp_path):
    sd = densenet121_state()
    torch.save(sd, tmp_path / "w.pt")
    net = B.load_backbone(tmp_path / "w.pt", image_size=64)
    x = images(size=128)
    small = F.interpolate(x, size=(64, 64), mode="area")
    assert_close_relative(net.embed(x), reference_embedding(sd, (2 * small - 1) * 1024))


def test_an_imagenet_file_with_old_keys_and_a_module_prefix_loads(tmp_path):
    """torchvision's ImageNet DenseNet-121 file predates '.' -free names (`norm.1.weight`) and has no BN
    counters; a DataParallel checkpoint adds 'module.'. Three channels: ImageNet mean/std, gray replicated."""
    sd = densenet121_state(in_channels=3, classes=1000, counters=False)
    old = {"module." + re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v for k, v in sd.items()}
    assert "module.features.denseblock1.denselayer1.norm.1.weight" in old
    torch.save({"state_dict": old}, tmp_path / "imagenet.pth")

    net = B.load_backbone(tmp_path / "imagenet.pth", image_size=64)
    x = images()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert net.convention == "imagenet"
    assert_close_relative(net.embed(x), reference_embedding(sd, (x.expand(-1, 3, -1, -1) - mean) / std))


def test_a_missing_file_says_it_is_never_downloaded(tmp_path):
    with pytest.raises(B.BackboneError, match="never downloads"):
        B.load_backbone(tmp_path / "nope.pt")


def test_a_pickled_model_is_refused_with_the_conversion_line(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "whole_model.pt")  # what torchxrayvision publishes: a pickle
    with pytest.raises(B.BackboneError, match=r"whole pickled model.*state_dict\(\)"):
        B.load_backbone(tmp_path / "whole_model.pt")


@pytest.mark.parametrize("change, message", [
    (lambda sd: sd.pop("features.denseblock4.denselayer16.conv2.weight"), "1 tensors missing"),
    (lambda sd: sd.update({"features.norm5.weight": torch.ones(1664)}), r"shape \(1664,\)"),
    (lambda sd: sd.update({"features.conv0.weight": torch.ones(64, 2, 7, 7)}), "takes 2 channels"),
    (lambda sd: [sd.pop(k) for k in list(sd) if k.startswith("features.")], "not a DenseNet state dict"),
])
def test_another_network_is_refused_in_one_line(tmp_path, change, message):
    sd = densenet121_state()
    change(sd)
    torch.save(sd, tmp_path / "w.pt")
    with pytest.raises(B.BackboneError, match=message):
        B.load_backbone(tmp_path / "w.pt")
