"""What a checkpoint may describe: tensors backed by their own bytes, networks of bounded size.

A file's size says nothing about what it describes. A tensor stored as one repeated element
(`torch.zeros(1).expand(10**9)`: stride 0) takes 4 bytes in the file and passes every shape
check; copying it into a network allocates the whole thing. And in-range model arguments can
still multiply into a network of terabytes. Both are refused here, before anything is built.
Each check returns the problem in words (or None); `xraymunit.checkpoint` raises it with the path.
"""

from __future__ import annotations

from collections import deque
from itertools import chain
from typing import TYPE_CHECKING, Any, Iterator

import torch

if TYPE_CHECKING:
    from xraymunit.config.train import ModelConfig

MAX_NETWORK_PARAMETERS = 2**29
"""Parameters + buffers of the networks one model config builds (2 GiB in float32, ~11× the
default MUNIT's 47 M; training adds gradients and two Adam moments: ~8 GiB). Beyond any model
trained here; a falsified config describing more is refused before a single layer exists."""


def _tensors(state: Any) -> Iterator[tuple[str, Any]]:
    """Every tensor inside nested dicts/lists/tuples with its key path (iterative: a deeply
    nested hostile file cannot exhaust the recursion limit), in the file's order."""
    queue: deque[tuple[str, Any]] = deque([("", state)])
    while queue:
        where, value = queue.popleft()
        if isinstance(value, torch.Tensor):
            yield where or "(top level)", value
        elif isinstance(value, dict):
            queue.extend((f"{where}.{key}" if where else str(key), v) for key, v in value.items())
        elif isinstance(value, (list, tuple)):
            queue.extend((f"{where}[{i}]", v) for i, v in enumerate(value))


def expanded_tensor(state: Any) -> str | None:
    """The first tensor that claims more values than its storage holds (stride 0 / overlapping
    strides) or is not a plain dense tensor; None when every tensor is backed by its own bytes.

    Strides alone are not refused: channels-last weights (CUDA runs) are non-contiguous but
    store every value once."""
    for where, tensor in _tensors(state):
        name = where if len(where) <= 80 else where[:77] + "..."
        if tensor.layout != torch.strided or tensor.is_quantized:
            return f"tensor {name!r} is not a dense tensor ({tensor.layout})"
        claimed = tensor.numel() * tensor.element_size()
        stored = tensor.untyped_storage().nbytes()
        if claimed > stored:
            return (f"tensor {name!r} of shape {tuple(tensor.shape)} claims {claimed} bytes but stores only {stored} "
                    f"bytes (an expanded or overlapping view)")
    return None


def network_parameters(model: "ModelConfig", *, discriminators: bool = True) -> int:
    """Parameters + buffers of both generators (and both discriminators) these arguments build,
    counted on the meta device: shapes only, no memory."""
    from xraymunit.models import MunitDiscriminators, MunitGenerators

    with torch.device("meta"):
        nets = [MunitGenerators(**model.generator_kwargs())]
        if discriminators:
            nets.append(MunitDiscriminators(**model.discriminator_kwargs()))
    return sum(t.numel() for net in nets for t in chain(net.parameters(), net.buffers()))


def oversized_networks(model: "ModelConfig", *, discriminators: bool = True) -> str | None:
    """Words for networks beyond MAX_NETWORK_PARAMETERS, else None."""
    count = network_parameters(model, discriminators=discriminators)
    if count <= MAX_NETWORK_PARAMETERS:
        return None
    what = "generators and discriminators" if discriminators else "generators"
    return (f"its model arguments build {what} of {count:,} parameters ({count * 4 / 2**30:,.1f} GiB in float32), "
            f"more than the limit of {MAX_NETWORK_PARAMETERS:,}")
