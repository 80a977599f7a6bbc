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
    assert runtime.use_channels_last("auto", cpu) is False and runtime.use_channels_last("on", cpu) is True


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
