"""A pretrained DenseNet-121 as a second feature network: realism and diversity comparable across studies.

The judge (quality/judge.py) is trained on each cohort, so its FD/KID/LPIPS-style numbers compare arms
within one study only. A network pretrained once on many chest X-rays gives every study the same feature
space: torchxrayvision's DenseNet-121 (Cohen et al. 2022, arXiv 2111.00595; one input channel, inputs
scaled to [-1024, 1024], 224 px) or, less suited to radiographs, torchvision's ImageNet DenseNet-121
(three channels, ImageNet mean/std).

Weights are never downloaded: the user names a state-dict file in torchvision's DenseNet layout
(`features.conv0.weight`, `features.denseblock1.denselayer1.norm1.weight`, ...; the classifier and
torchxrayvision's `op_threshs` are ignored). The network is MONAI's DenseNet121; the keys are mapped.
torchxrayvision publishes whole pickled models, which need torchxrayvision to unpickle; one line with it
installed writes the state dict (CONVERT_HINT), and this module only ever loads with weights_only=True.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from xraymunit.errors import XraymunitError
from xraymunit.evaluation.datasets import resize_batch
from xraymunit.models.vgg import IMAGENET_MEAN, IMAGENET_STD

XRV_RANGE = 1024.0
"""torchxrayvision's input scale: an image in [0, 1] maps to [-1024, 1024] (its datasets.normalize)."""

CONVERT_HINT = (
    "write a state dict where torchxrayvision is installed: python -c \"import torch, torchxrayvision as xrv; "
    "torch.save(xrv.models.DenseNet(weights='densenet121-res224-all').state_dict(), 'xrv-densenet121-all.pt')\"")

_OLD_LAYER_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
_LAYER_KEY = re.compile(r"^(features\.denseblock\d+\.denselayer\d+)\.(norm[12]|conv[12])\.(.+)$")


class BackboneError(XraymunitError):
    """The backbone's weight file is missing, unreadable, or not a DenseNet-121 state dict."""


def monai_key(torchvision_key: str) -> str:
    """torchvision's `...denselayerN.norm1.weight` is MONAI's `...denselayerN.layers.norm1.weight`."""
    return _LAYER_KEY.sub(r"\1.layers.\2.\3", torchvision_key)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The `features.*` tensors of a DenseNet state-dict file, in torchvision's current key names.

    Accepts a bare state dict or one under "state_dict"; strips DataParallel's "module." prefix and
    renames the pre-0.4 torchvision keys (`norm.1.weight` → `norm1.weight`) as torchvision does.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise BackboneError(f"backbone weights not found: {path} (xraymunit never downloads weights; "
                            f"{CONVERT_HINT})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a pickled model, a truncated file: the user's to fix
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackboneError(f"cannot read {path} as a state dict ({first[:200]}); if it is a whole pickled "
                            f"model (torchxrayvision's own files are), {CONVERT_HINT}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BackboneError(f"{path} does not hold a state dict of tensors; {CONVERT_HINT}")
    features = {}
    for key, tensor in state.items():
        key = key.removeprefix("module.")
        if key.startswith("features."):
            features[_OLD_LAYER_KEY.sub(r"\1\2", key)] = tensor
    if "features.conv0.weight" not in features:
        raise BackboneError(f"{path} is not a DenseNet state dict in torchvision's layout (no "
                            f"'features.conv0.weight'; first keys: {list(state)[:3]})")
    return features


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class DenseNet121Backbone:
    """A frozen DenseNet-121 on [0, 1] cohort images: pooled features (FD/KID) and feature maps (LPIPS-style).

    Args:
        state: `read_state_dict`'s output; its first convolution decides the input convention:
            1 channel = torchxrayvision's ([-1024, 1024]), 3 channels = ImageNet's (replicated, mean/std).
        image_size: the side images are resized to (224: both pretrained families' training size).
    """

    def __init__(self, state: dict[str, torch.Tensor], image_size: int = 224, device: str | torch.device = "cpu",
                 source: str = "state dict", sha256: str | None = None):
        from monai.networks.nets import DenseNet121

        self.in_channels = int(state["features.conv0.weight"].shape[1])
        if self.in_channels not in (1, 3):
            raise BackboneError(f"{source}: the first convolution takes {self.in_channels} channels; a chest X-ray "
                                "backbone takes 1 (torchxrayvision) or 3 (ImageNet)")
        net = DenseNet121(spatial_dims=2, in_channels=self.in_channels, out_channels=1).features
        # BatchNorm's step counter is absent from files saved before torch 0.4.1 and never used in eval mode
        wanted = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
        mapped = {monai_key(k).removeprefix("features."): v for k, v in state.items()}
        missing = [k for k in wanted if k not in mapped]
        if missing:
            raise BackboneError(f"{source} is not a DenseNet-121 state dict: {len(missing)} tensors missing, first "
                                f"'features.{missing[0]}'")
        for key, tensor in wanted.items():
            if tuple(mapped[key].shape) != tuple(tensor.shape):
                raise BackboneError(f"{source}: 'features.{key}' has shape {tuple(mapped[key].shape)}, DenseNet-121 "
                                    f"has {tuple(tensor.shape)} (is it DenseNet-161/169/201?)")
        net.load_state_dict({k: mapped[k] for k in wanted}, strict=False)
        self.device = torch.device(device)
        self.net = net.to(self.device).eval().requires_grad_(False)
        self.image_size, self.source, self.sha256 = int(image_size), source, sha256
        self.convention = "torchxrayvision" if self.in_channels == 1 else "imagenet"

    def describe(self) -> str:
        return (f"DenseNet-121 from {Path(self.source).name} ({self.convention} input convention, "
                f"{self.image_size}px; sha256 {self.sha256[:12] if self.sha256 else 'n/a'})")

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """(n, 1, s, s) images in [0, 1] → the network's size and input scale."""
        x = resize_batch(images.float(), self.image_size)
        if self.in_channels == 1:
            return (2.0 * x - 1.0) * XRV_RANGE
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return (x.expand(-1, 3, -1, -1) - mean) / std

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch: int = 32) -> np.ndarray:
        """1024 features per image: ReLU of the last norm, global-average-pooled (torchxrayvision's features2)."""
        out = []
        for i in range(0, len(images), batch):
            h = self.net(self.prepare(images[i:i + batch]).to(self.device))
            out.append(F.adaptive_avg_pool2d(F.relu(h), 1).flatten(1).double().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, 1024))

    @torch.no_grad()
    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The stem (after pool0) and every dense block's output, as the judge's LPIPS-style layers."""
        h, maps = self.prepare(images).to(self.device), []
        for name, module in self.net.named_children():
            h = module(h)
            if name == "pool0" or name.startswith("denseblock"):
                maps.append(h)
        return maps


def load_backbone(path: str | Path, image_size: int = 224, device: str | torch.device = "cpu") -> DenseNet121Backbone:
    """The backbone from a user's weight file (checked in full: keys and shapes), never from the internet."""
    state = read_state_dict(path)
    return DenseNet121Backbone(state, image_size, device, source=str(path), sha256=file_sha256(path))
