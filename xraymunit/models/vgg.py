"""VGG16 feature extractor in torchvision's state-dict layout (`features.N.weight`), no torchvision.

Used only by the domain-invariant perceptual loss. Weights are never downloaded: they
come from a file the user names, the torch hub cache (where torchvision keeps
`vgg16-397923af.pth`), or a seeded random initialisation chosen explicitly.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from xraymunit.errors import XraymunitError

# torchvision's vgg16 "D" configuration: numbers are conv widths, "M" a 2×2 max-pool.
_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# Index (in `features`) of the ReLU that ends each named layer.
LAYERS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}
TORCHVISION_FILENAME = "vgg16-397923af.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGWeightsError(XraymunitError):
    """VGG16 weights are missing or do not fit; the message says what to do."""


def _features(cfg=_VGG16_CFG) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=True)]
            channels = item
    return nn.Sequential(*layers)


class VGG16Features(nn.Module):
    """VGG16 convolutional trunk up to `layer`, frozen, with ImageNet input normalisation.

    Input: images in [-1, 1] with 1 or 3 channels; one channel is replicated to three
    here, and only here (grayscale everywhere else).

    Args:
        layer: last layer kept, one of LAYERS (the MUNIT reference uses relu5_3); the
            layers after it are not built, which saves compute.
    """

    def __init__(self, layer: str = "relu5_3"):
        super().__init__()
        if layer not in LAYERS:
            raise ValueError(f"unknown VGG16 layer {layer!r}; choose one of {sorted(LAYERS)}")
        self.layer = layer
        self.features = _features()[: LAYERS[layer] + 1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGG16Features":
        return super().train(False)  # always frozen: no dropout/BN, but keep it explicit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = ((x + 1.0) * 0.5 - self.mean) / self.std
        return self.features(x)

    def load_torchvision_state_dict(self, state_dict: dict, source: str = "state dict") -> None:
        """Load the `features.*` entries of a torchvision VGG16 state dict (classifier keys ignored)."""
        wanted = self.features.state_dict()
        picked = {}
        for key in wanted:
            full = f"features.{key}"
            if full not in state_dict:
                raise VGGWeightsError(
                    f"{source} is not a torchvision VGG16 state dict: missing '{full}'"
                )
            tensor = state_dict[full]
            if tuple(tensor.shape) != tuple(wanted[key].shape):
                raise VGGWeightsError(
                    f"{source}: '{full}' has shape {tuple(tensor.shape)}, expected {tuple(wanted[key].shape)} "
                    "(is this VGG16, not VGG16-BN or VGG19?)"
                )
            picked[key] = tensor
        self.features.load_state_dict(picked)


def hub_cache_path() -> Path:
    """Where torchvision stores the ImageNet VGG16 weights when it downloads them."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILENAME


def build_vgg16(backbone: str, layer: str = "relu5_3", weights: str | Path | None = None,
                seed: int = 0) -> VGG16Features:
    """Build the perceptual network for one of the offline choices.

    backbone:
        "imagenet": torchvision ImageNet weights from `weights` if given, else the torch
            hub cache; a clear error says how to get them when neither exists.
        "file": any torchvision-layout VGG16 state dict at `weights` (e.g. one trained on
            your own radiographs).
        "random": a seeded random (Kaiming) initialisation — needs no file; gives a weaker,
            non-semantic but still structure-sensitive feature distance.
    """
    net = VGG16Features(layer)
    if backbone == "random":
        gen = torch.Generator().manual_seed(seed)
        for module in net.features:
            if isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                with torch.no_grad():
                    module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=gen)
                    module.bias.zero_()
        return net
    if backbone not in ("imagenet", "file"):
        raise VGGWeightsError(f"unknown perceptual backbone {backbone!r} (imagenet, file or random)")
    if weights is None:
        if backbone == "file":
            raise VGGWeightsError("perceptual.backbone=file needs perceptual.weights=PATH")
        path = hub_cache_path()
    else:
        path = Path(weights).expanduser()
    if not path.is_file():
        raise VGGWeightsError(
            f"VGG16 ImageNet weights not found at {path}. The perceptual loss is on "
            "(loss.perceptual > 0) and xraymunit never downloads weights. Either copy torchvision's "
            f"'{TORCHVISION_FILENAME}' there (or set perceptual.weights=PATH), or choose an offline "
            "option: --set perceptual.backbone=random, or --set loss.perceptual=0."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise VGGWeightsError(f"cannot read VGG16 weights {path}: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise VGGWeightsError(f"{path} does not hold a state dict")
    net.load_torchvision_state_dict(state, source=str(path))
    return net
