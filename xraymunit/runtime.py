"""Where and how a stage computes: one device resolver, precision, threads and progress bars.

Every stage resolves `--device` here, so `auto` means the same everywhere (CUDA when
available, else Apple's MPS, else the CPU) and an unavailable device is one clear line.
Every stage also sets its CPU threads here at its start (`apply_threads`), from one rule.
torch is imported inside the functions: the CLI imports this module to build `--help`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Mapping

from xraymunit.errors import XraymunitError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DEVICE_HELP = "auto (CUDA if available, else MPS, else CPU), cpu, cuda, cuda:N or mps"
THREADS_AUTO = ("OMP_NUM_THREADS when set, else the CPUs this process may use: the least of its affinity, "
                "its cgroup CPU quota and SLURM_CPUS_PER_TASK, shared among torchrun's local processes")
THREADS_HELP = f"CPU threads of torch (default: {THREADS_AUTO}); 1 when other work competes for the cores"
PRECISIONS = ("auto", "fp32", "bf16")


class DeviceError(XraymunitError):
    """The requested device does not exist on this machine."""


class ThreadsError(XraymunitError):
    """A thread count that is not a positive integer."""


USE_CPU = "use the CPU instead (--device cpu on the command line, device=\"cpu\" from Python)"


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
            raise DeviceError(f"device {name!r} requested but CUDA is not available: {USE_CPU}")
        if name == "cuda":
            rank = int(os.environ.get("LOCAL_RANK", "0")) if local_rank is None else local_rank
            name = f"cuda:{rank % max(torch.cuda.device_count(), 1)}"
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} requested but this machine has {torch.cuda.device_count()} GPU(s)")
    elif name == "mps":
        if not _mps_available():
            raise DeviceError(f"device 'mps' requested but it is not available: {USE_CPU}")
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
    """NHWC training: "auto" on CUDA, and on CPUs that train in fp32 (no native bf16), where it measured
    0.79 → 0.65 s per tiny-config step on a 2-core AVX2 EPYC (BENCHMARKS.md, Train); off where bf16 runs."""
    if setting == "auto":
        return device.type == "cuda" or (device.type == "cpu" and amp_dtype("auto", device) is None)
    return setting == "on"


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


# --------------------------------------------------------------------------- CPU threads
#
# torch starts one intra-op thread per *visible* core, whatever the process may really use: in a
# container with a 2-CPU quota on a 64-core host, under `taskset`, or as a SLURM task with
# --cpus-per-task=2 it spins 64 threads on 2 CPUs. Spinning threads that wait for a core cost
# 2x or more (BENCHMARKS.md, "CPU threads under contention"), so every stage sets its threads
# at its start from the rule below, or from its --threads.


def _positive_int(text: object) -> int | None:
    try:
        value = int(str(text).strip())
    except ValueError:
        return None
    return value if value >= 1 else None


def _cgroup_dirs(mount: Path, path: str) -> Iterator[Path]:
    """The process's cgroup folder under `mount` and its ancestors up to the mount (each may cap it)."""
    parts = [p for p in path.strip().split("/") if p and p != ".."]
    for n in range(len(parts), -1, -1):
        yield mount.joinpath(*parts[:n])


def _read_quota(folder: Path, v2: bool) -> float | None:
    """CPUs' worth of quota in one cgroup folder (v2 cpu.max, v1 cfs_quota_us/cfs_period_us); None: none."""
    try:
        if v2:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
        else:
            quota = (folder / "cpu.cfs_quota_us").read_text().strip()
            period = (folder / "cpu.cfs_period_us").read_text().strip()
        if quota == "max" or int(quota) <= 0 or int(period) <= 0:
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        return None


def cgroup_cpu_quota(root: str | Path = "/") -> float | None:
    """The smallest CPU quota (in CPUs, e.g. 1.5) on the process's cgroups and their ancestors, for
    cgroup v2 and v1; None when there is none. `root` prefixes /proc and /sys (tests write fakes)."""
    root = Path(root)
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        if controllers == "":  # v2: "0::/path"
            mounts = [(root / "sys/fs/cgroup", True)]
        elif "cpu" in controllers.split(","):  # v1: "4:cpu,cpuacct:/path"
            names = dict.fromkeys((controllers, "cpu,cpuacct", "cpu"))  # where distributions mount it
            mounts = [(root / "sys/fs/cgroup" / name, False) for name in names]
        else:
            continue
        for mount, v2 in mounts:
            quotas += [q for d in _cgroup_dirs(mount, path) if (q := _read_quota(d, v2)) is not None]
    return min(quotas) if quotas else None


def _affinity() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return None


def available_cpus(*, root: str | Path = "/", environ: Mapping[str, str] | None = None,
                   affinity: set[int] | None = None) -> tuple[int, str]:
    """(CPUs this process may use, what limits it): the least of its affinity mask, its cgroup CPU
    quota (rounded down, at least 1) and SLURM_CPUS_PER_TASK; else the core count."""
    env = os.environ if environ is None else environ
    cpus = affinity if affinity is not None else _affinity()
    limits = [(len(cpus), f"affinity: {len(cpus)} CPU(s)")] if cpus else []
    quota = cgroup_cpu_quota(root)
    if quota is not None:
        limits.append((max(1, math.floor(quota + 1e-9)), f"cgroup CPU quota: {quota:g} CPU(s)"))
    if slurm := _positive_int(env.get("SLURM_CPUS_PER_TASK", "")):
        limits.append((slurm, f"SLURM_CPUS_PER_TASK={slurm}"))
    if not limits:
        return os.cpu_count() or 1, f"{os.cpu_count() or 1} core(s)"
    return min(limits)


def resolve_threads(requested: int | None = None, *, root: str | Path = "/", environ: Mapping[str, str] | None = None,
                    affinity: set[int] | None = None) -> tuple[int, str]:
    """(torch threads for this process, why): --threads when given; else OMP_NUM_THREADS when set;
    else `available_cpus` shared among torchrun's processes on this machine (LOCAL_WORLD_SIZE)."""
    env = os.environ if environ is None else environ
    if requested is not None:
        if type(requested) is not int or requested < 1:
            raise ThreadsError(f"--threads must be a positive integer, got {requested!r}")
        return requested, "--threads"
    if omp := _positive_int(env.get("OMP_NUM_THREADS", "")):
        return omp, f"OMP_NUM_THREADS={omp}"
    cpus, why = available_cpus(root=root, environ=env, affinity=affinity)
    local = _positive_int(env.get("LOCAL_WORLD_SIZE", "")) or 1
    if local > 1:
        return max(1, cpus // local), f"{why}, shared by {local} local processes"
    return cpus, why


_scoped: list[int] = []  # explicit counts of enclosing `threads_scope`s (the pipeline's --threads)
_interop_set = False


def apply_threads(requested: int | None = None) -> int:
    """Set torch's threads at a stage's start (`resolve_threads`; inside a `threads_scope`, an
    automatic request keeps the scope's count) and log the count with its reason. Returns it."""
    import torch

    global _interop_set
    if requested is None and _scoped:
        threads, why = _scoped[-1], "--threads of the pipeline"
    else:
        threads, why = resolve_threads(requested)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if not _interop_set:  # settable once, before any inter-op work; torch's default is every core
        _interop_set = True
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(threads)
    log.debug("%d CPU thread(s) (%s)", threads, why)  # -v: an info line would break "one stderr line" on errors
    return threads


@contextlib.contextmanager
def threads_scope(requested: int | None) -> Iterator[int]:
    """Apply `requested` for the stages run inside (they keep it when their own request is automatic)."""
    threads = apply_threads(requested)
    if requested is not None:
        _scoped.append(threads)
    try:
        yield threads
    finally:
        if requested is not None:
            _scoped.pop()


def inductor_options() -> dict:
    """Inductor options that keep its on-disk cache right when the CPU's vector ISA changes.

    Inductor writes its C++ kernels for one vector width: the widest the CPU has, or the one
    ATEN_CPU_CAPABILITY names. Its FX graph cache (torch 2.13) leaves that width out of its key,
    so kernels written for AVX-512 (16 floats a step) are served to a process on AVX2 (a shared
    cache folder, or ATEN_CPU_CAPABILITY=avx2) and rebuilt with AVX2 flags (8 floats a step):
    NaN images or losses, or a crash (double free). Naming the width inductor picks
    (`cpp.simdlen`) puts it in the key; the kernels stay the ones inductor would write anyway.
    Every torch.compile of xraymunit (rendering, training) passes these options.
    """
    try:
        from torch._inductor.cpu_vec_isa import pick_vec_isa

        return {"cpp.simdlen": int(pick_vec_isa().bit_width())}
    except Exception:  # no inductor ISA probe here (another torch build): its own choice, unkeyed
        return {}
