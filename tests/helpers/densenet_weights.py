"""A random DenseNet-121 weight file's content in torchvision's layout, written from the architecture's
definition (not from xraymunit's code): what a pretrained-backbone test loads."""

import torch

BLOCKS, GROWTH, BOTTLENECK = (6, 12, 24, 16), 32, 128


def densenet121_state(in_channels: int = 1, classes: int = 18, seed: int = 0, counters: bool = True) -> dict:
    """A random DenseNet-121 state dict in torchvision's layout, built from the architecture's definition
    (torchxrayvision's files add `op_threshs`; files from before torch 0.4.1 have no BN step counters)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def conv(name, cout, cin, k):
        sd[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (2.0 / (cin * k * k)) ** 0.5

    def bn(name, c):
        sd[f"{name}.weight"] = 1 + 0.1 * torch.randn(c, generator=g)
        sd[f"{name}.bias"] = 0.1 * torch.randn(c, generator=g)
        sd[f"{name}.running_mean"] = 0.1 * torch.randn(c, generator=g)
        sd[f"{name}.running_var"] = 1 + 0.1 * torch.rand(c, generator=g)
        if counters:
            sd[f"{name}.num_batches_tracked"] = torch.tensor(7)

    conv("features.conv0", 64, in_channels, 7)
    bn("features.norm0", 64)
    c = 64
    for b, n in enumerate(BLOCKS, 1):
        for i in range(n):
            p = f"features.denseblock{b}.denselayer{i + 1}"
            bn(f"{p}.norm1", c + i * GROWTH)
            conv(f"{p}.conv1", BOTTLENECK, c + i * GROWTH, 1)
            bn(f"{p}.norm2", BOTTLENECK)
            conv(f"{p}.conv2", GROWTH, BOTTLENECK, 3)
        c += n * GROWTH
        if b < len(BLOCKS):
            bn(f"features.transition{b}.norm", c)
            conv(f"features.transition{b}.conv", c // 2, c, 1)
            c //= 2
    bn("features.norm5", c)
    sd["classifier.weight"] = torch.randn(classes, c, generator=g) * 0.01
    sd["classifier.bias"] = torch.zeros(classes)
    return sd
