"""Where and how a stage computes: one device resolver, precision, threads and progress bars.

Every stage resolves `--device` here, so `auto` means the same everywhere (CUDA when
available, else Apple's MPS, else the CPU) and an unavailable device is one clear line.
torch is imported inside the functions: the CLI imports this module to build `--help`.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from xraymunit.errors import XraymunitError

if TYPE_CHECKING:
    import torch

DEVICE_HELP = "auto (CUDA if available, else MPS, else CPU), cpu, cuda, cuda:N or mps"
PRECISIONS = ("auto", "fp32", "bf16")


class DeviceError(XraymunitError):
    """The requested device does not exist on this machine."""


def resolve_device(name: str | None = "auto", local_rank: int | None = None) -> "torch.device":
    """`auto`/`cpu`/`cuda`/`cuda:N`/`mps` → a device that exists.

    Under torchrun (`LOCAL_RANK` set) plain `cuda` means this process's own GPU.
    """
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif _mps_available():
            name = "mps"
        else:
            name = "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} requested but CUDA is not available (use --device cpu)")
        if name == "cuda":
            rank = int(os.environ.get("LOCAL_RANK", "0")) if local_rank is None else local_rank
            name = f"cuda:{rank % max(torch.cuda.device_count(), 1)}"
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} requested but this machine has {torch.cuda.device_count()} GPU(s)")
    elif name == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' requested but it is not available (use --device cpu)")
    elif name != "cpu":
        raise DeviceError(f"unknown device {name!r}: use {DEVICE_HELP}")
    return torch.device(name)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def cpu_has_native_bf16() -> bool:
    """True on CPUs whose oneDNN kernels run bf16 natively (AVX512-BF16 / AMX)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def amp_dtype(setting: str, device: "torch.device") -> "torch.dtype | None":
    """bf16 autocast or None (fp32). "auto" picks bf16 on CUDA and on CPUs with native bf16,
    where it runs the same curves ~1.6× faster (BENCHMARKS.md); elsewhere fp32."""
    import torch

    if setting == "bf16":
        return torch.bfloat16
    if setting == "auto" and (device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())):
        return torch.bfloat16
    return None


def use_channels_last(setting: str, device: "torch.device") -> bool:
    return setting == "on" or (setting == "auto" and device.type == "cuda")


CPU_FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx")  # what decides fp32/bf16 speed on a CPU


def cpu_description() -> dict:
    """CPU model, core count and the flags that decide its speed: stated next to every CPU figure."""
    cpu, flags = platform.processor() or "", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = sorted(f for f in line.split(":", 1)[1].split() if f.startswith(CPU_FLAGS_OF_INTEREST))
    except OSError:
        pass
    return {"cpu": cpu, "cpu_flags": flags, "cores": os.cpu_count()}


def progress_enabled(requested: bool | None = None, stream=None) -> bool:
    """Progress bars: as requested, else only when stderr is a terminal (not in batch logs)."""
    if requested is not None:
        return bool(requested)
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
