import pytest
import torch

from xraymunit.models import vgg
from xraymunit.models.vgg import VGG16Features, VGGWeightsError, build_vgg16

TORCHVISION_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


def torchvision_like_state_dict(seed: int = 1) -> dict:
    """A full torchvision-layout VGG16 state dict (features + classifier), random values."""
    g = torch.Generator().manual_seed(seed)
    widths = [3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    sd = {}
    for i, idx in enumerate(TORCHVISION_CONV_INDICES):
        sd[f"features.{idx}.weight"] = torch.randn(widths[i + 1], widths[i], 3, 3, generator=g) * 0.05
        sd[f"features.{idx}.bias"] = torch.randn(widths[i + 1], generator=g) * 0.01
    sd["classifier.0.weight"] = torch.zeros(4, 25088)  # torchvision has one; it must be ignored
    sd["classifier.0.bias"] = torch.zeros(4)
    return sd


def test_layout_matches_torchvision_names():
    keys = set(VGG16Features("relu5_3").features.state_dict())
    expected = {f"{i}.{p}" for i in TORCHVISION_CONV_INDICES for p in ("weight", "bias")}
    assert keys == expected


def test_loads_real_file_from_an_explicit_path(tmp_path):
    sd = torchvision_like_state_dict()
    path = tmp_path / "vgg16.pth"
    torch.save(sd, path)
    net = build_vgg16("imagenet", "relu5_3", weights=path)
    assert torch.equal(net.features[28].weight, sd["features.28.weight"])
    out = net(torch.rand(1, 1, 64, 64) * 2 - 1)  # grayscale replicated to 3 channels inside
    assert out.shape == (1, 512, 4, 4)
    assert not any(p.requires_grad for p in net.parameters())


def test_loads_from_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        path = vgg.hub_cache_path()
        path.parent.mkdir(parents=True)
        sd = torchvision_like_state_dict(seed=2)
        torch.save(sd, path)
        net = build_vgg16("imagenet", "relu2_2")
        assert torch.equal(net.features[7].weight, sd["features.7.weight"])
        assert len(net.features) == vgg.LAYERS["relu2_2"] + 1  # deeper layers not built
    finally:
        torch.hub.set_dir(str(tmp_path / "unused"))


def test_missing_weights_error_says_what_to_do(tmp_path):
    with pytest.raises(VGGWeightsError, match="perceptual.backbone=random|loss.perceptual=0"):
        build_vgg16("imagenet", weights=tmp_path / "nope.pth")


def test_wrong_architecture_is_rejected(tmp_path):
    sd = torchvision_like_state_dict()
    sd["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(VGGWeightsError, match="shape"):
        build_vgg16("file", weights=tmp_path / "bad.pth")
    torch.save({"foo": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(VGGWeightsError, match="missing 'features.0.weight'"):
        build_vgg16("file", weights=tmp_path / "other.pth")


def test_random_backbone_is_seeded():
    a, b, c = build_vgg16("random", seed=3), build_vgg16("random", seed=3), build_vgg16("random", seed=4)
    assert torch.equal(a.features[0].weight, b.features[0].weight)
    assert not torch.equal(a.features[0].weight, c.features[0].weight)
