"""runtime.py: one device resolver for every stage, precision, progress bars, CPU description."""

import io
import os

import pytest
import torch

from xraymunit import runtime


def test_auto_is_the_best_available_device_and_cpu_is_always_there():
    expected = "cuda" if torch.cuda.is_available() else "mps" if runtime._mps_available() else "cpu"
    assert runtime.resolve_device("auto").type == expected
    assert runtime.resolve_device(None).type == expected
    assert runtime.resolve_device(" CPU ") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_missing_cuda_is_one_clear_error(name):
    with pytest.raises(runtime.DeviceError, match="CUDA is not available"):
        runtime.resolve_device(name)


def test_unknown_device_names_the_accepted_values():
    with pytest.raises(runtime.DeviceError, match="unknown device 'tpu'.*auto"):
        runtime.resolve_device("tpu")


def test_amp_dtype_follows_the_setting_and_the_cpu():
    cpu = torch.device("cpu")
    assert runtime.amp_dtype("bf16", cpu) is torch.bfloat16
    assert runtime.amp_dtype("fp32", cpu) is None
    assert runtime.amp_dtype("auto", cpu) == (torch.bfloat16 if runtime.cpu_has_native_bf16() else None)
    # NHWC on a CPU only where it trains in fp32 (measured faster there; bf16 CPUs keep what was measured)
    assert runtime.use_channels_last("auto", cpu) is (not runtime.cpu_has_native_bf16())
    assert runtime.use_channels_last("on", cpu) is True and runtime.use_channels_last("off", cpu) is False


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_progress_is_automatic_unless_asked():
    assert runtime.progress_enabled(None, _Stream(True)) is True
    assert runtime.progress_enabled(None, _Stream(False)) is False  # batch logs: no bars
    assert runtime.progress_enabled(False, _Stream(True)) is False
    assert runtime.progress_enabled(True, _Stream(False)) is True
    closed = io.StringIO()
    closed.close()  # isatty() raises ValueError on a closed stream
    assert runtime.progress_enabled(None, closed) is False


def test_cpu_description_names_model_cores_and_speed_flags():
    d = runtime.cpu_description()
    assert d["cores"] == os.cpu_count()
    assert isinstance(d["cpu"], str)
    assert all(f.startswith(runtime.CPU_FLAGS_OF_INTEREST) for f in d["cpu_flags"])
    if os.path.exists("/proc/cpuinfo"):
        flags = open("/proc/cpuinfo").read()
        assert ("avx2" in d["cpu_flags"]) == (" avx2" in flags)


# --------------------------------------------------------------------------- CPU threads (issue 23: contention)


def _write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_thread_rule_takes_the_least_of_affinity_quota_and_slurm(tmp_path):
    empty = tmp_path / "nothing"  # no /proc, no /sys: no cgroup quota
    resolve = runtime.resolve_threads
    assert resolve(root=empty, environ={}, affinity=set(range(8))) == (8, "affinity: 8 CPU(s)")
    assert resolve(root=empty, environ={"SLURM_CPUS_PER_TASK": "3"}, affinity=set(range(8))) == (
        3, "SLURM_CPUS_PER_TASK=3")
    assert resolve(root=empty, environ={"SLURM_CPUS_PER_TASK": "16"}, affinity={0, 5})[0] == 2
    assert resolve(root=empty, environ={"SLURM_CPUS_PER_TASK": "junk"}, affinity={0, 5})[0] == 2
    assert resolve(root=empty, environ={"LOCAL_WORLD_SIZE": "4"}, affinity=set(range(8)))[0] == 2  # torchrun
    assert resolve(root=empty, environ={"LOCAL_WORLD_SIZE": "4"}, affinity={0})[0] == 1
    # an explicit OMP_NUM_THREADS is the user's choice; --threads wins over everything
    assert resolve(root=empty, environ={"OMP_NUM_THREADS": "5"}, affinity={0}) == (5, "OMP_NUM_THREADS=5")
    assert resolve(3, root=empty, environ={"OMP_NUM_THREADS": "5"}, affinity={0}) == (3, "--threads")
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(runtime.ThreadsError, match="--threads must be a positive integer"):
            resolve(bad, root=empty, environ={})


@pytest.mark.parametrize("files, quota, threads", [
    ({"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "150000 100000\n"}, 1.5, 1),  # v2, container
    ({"proc/self/cgroup": "0::/job/step\n", "sys/fs/cgroup/job/step/cpu.max": "max 100000\n",
      "sys/fs/cgroup/job/cpu.max": "300000 100000\n"}, 3.0, 3),  # v2: an ancestor's quota caps too
    ({"proc/self/cgroup": "0::/job\n", "sys/fs/cgroup/job/cpu.max": "max 100000\n"}, None, 8),  # no quota
    ({"proc/self/cgroup": "5:cpuacct,cpu:/docker/abc\n1:name=systemd:/\n",
      "sys/fs/cgroup/cpuacct,cpu/docker/abc/cpu.cfs_quota_us": "200000\n",
      "sys/fs/cgroup/cpuacct,cpu/docker/abc/cpu.cfs_period_us": "100000\n"}, 2.0, 2),  # v1
    ({"proc/self/cgroup": "4:cpu,cpuacct:/\n", "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n",
      "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n"}, None, 8),  # v1 without a quota
    ({"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "garbage\n"}, None, 8),
    ({"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "50000 100000\n"}, 0.5, 1),  # at least 1
])
def test_cgroup_cpu_quotas_v1_and_v2(tmp_path, files, quota, threads):
    for rel, text in files.items():
        _write(tmp_path, rel, text)
    assert runtime.cgroup_cpu_quota(tmp_path) == quota
    assert runtime.resolve_threads(root=tmp_path, environ={}, affinity=set(range(8)))[0] == threads


def test_apply_threads_sets_torch_and_a_scope_holds_for_automatic_requests(monkeypatch):
    saved = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    try:
        assert runtime.apply_threads(1) == 1 and torch.get_num_threads() == 1
        assert runtime.apply_threads(None) == 2 and torch.get_num_threads() == 2  # automatic again
        with runtime.threads_scope(1):
            assert runtime.apply_threads(None) == 1 and torch.get_num_threads() == 1  # a stage in the pipeline
            assert runtime.apply_threads(2) == 2  # its own explicit request still wins
        assert runtime.apply_threads(None) == 2
    finally:
        torch.set_num_threads(saved)


def test_every_compile_names_the_vector_width_inductor_writes_for(monkeypatch):
    """Issue 23: inductor's FX graph cache keeps no vector ISA in its key; `cpp.simdlen` puts it there
    (the kernels' width follows ATEN_CPU_CAPABILITY, so AVX2 and AVX-512 compiles get different keys),
    and training's --compile passes it like synthesis's (tests/synthesis/test_renderer.py)."""
    import types

    from torch._inductor.cpu_vec_isa import pick_vec_isa, valid_vec_isa_list

    from xraymunit.runtime import inductor_options
    from xraymunit.training import plan

    if 256 in {isa.bit_width() for isa in valid_vec_isa_list()}:
        monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
        assert inductor_options() == {"cpp.simdlen": 256}
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    assert inductor_options() == {"cpp.simdlen": pick_vec_isa().bit_width()}
    seen = []
    monkeypatch.setattr(torch, "compile", lambda module, **kw: seen.append(kw) or module)
    cfg = types.SimpleNamespace(train=types.SimpleNamespace(compile=True))
    plan._wrapped(torch.nn.Linear(1, 1), torch.nn.Linear(1, 1), cfg, types.SimpleNamespace(enabled=False),
                  torch.device("cpu"))
    assert seen == [{"options": inductor_options()}] * 2
