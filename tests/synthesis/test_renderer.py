"""renderer.py: fixed-shape decoder calls (images independent of their batch-mates), stop between calls."""

import copy

import numpy as np
import pytest
import torch

from xraymunit.io.cohort import Cohort
from xraymunit.checkpoint import load_generators
from xraymunit.synthesis.renderer import Renderer, compiled, render_threads
from xraymunit.synthesis.styles import random_styles


@pytest.fixture(scope="module")
def parts(tiny):
    cohort, ckpt = tiny
    loaded = load_generators(ckpt, torch.device("cpu"))
    gens, cfg = loaded.gens, loaded
    data = Cohort.open(cohort)
    image = data.image(int(data.select("train", "normal")["cache_index"].iloc[0]))
    return gens, cfg, image


def _renderer(parts, batch_size, bf16=False):
    gens, cfg, _ = parts  # copies: a renderer casts its decoder in place
    return Renderer(copy.deepcopy(gens.gen_a), copy.deepcopy(gens.gen_b), torch.device("cpu"), cfg.image_size, bf16=bf16,
                    batch_size=batch_size)


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_an_image_does_not_depend_on_which_styles_are_rendered_with_it(parts, bf16):
    codes = random_styles(0, "src", 7, parts[1].model.style_dim)
    renderer = _renderer(parts, 3, bf16)
    every = renderer.render(parts[2], codes)
    assert every.shape == (7, 32, 32) and every.dtype == np.float32 and 0 <= every.min() <= every.max() <= 1
    assert np.abs(every[0] - every[1]).mean() > 1e-4  # styles differ
    some = list(renderer.batches(parts[2], codes, {1, 5, 6}))
    assert [keep for keep, _, _ in some] == [[1], [5], [6]]  # calls 0-2, 3-5 and 6 (padded); none for nothing wanted
    for keep, images, maps in some:
        assert np.array_equal(images, every[keep]) and maps is None  # bit for bit; no change maps unless asked
    more = renderer.render(parts[2], random_styles(0, "src", 9, parts[1].model.style_dim))
    assert np.array_equal(more[:7], every)  # asking for more styles leaves the first ones alone


def test_every_call_has_exactly_batch_size_rows(parts, monkeypatch):
    renderer = _renderer(parts, 4)
    renderer.prepare()
    sizes, real = [], renderer._render
    monkeypatch.setattr(renderer, "_render", lambda c, s, sh, src: sizes.append(len(s)) or real(c, s, sh, src))
    renderer.render(parts[2], random_styles(1, "src", 5, parts[1].model.style_dim))
    assert sizes == [4, 4]


def test_stop_is_asked_before_each_call(parts):
    renderer = _renderer(parts, 2)
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 1  # SIGTERM arrives during the first call

    got = list(renderer.batches(parts[2], random_styles(0, "s", 6, parts[1].model.style_dim), set(range(6)), stop))
    assert [keep for keep, _, _ in got] == [[0, 1]] and len(calls) == 2


def test_render_threads_set_and_restore_the_op_threads(parts):
    before = torch.get_num_threads()
    renderer = _renderer(parts, 2)
    renderer.n_threads, renderer.op_threads = 2, 1
    with renderer:
        seen = renderer.submit(torch.get_num_threads).result()
    assert seen == 1 and torch.get_num_threads() == before
    assert render_threads(3, torch.device("cpu"), False)[0] == 3


def test_reference_styles_are_the_style_encoders_codes(parts):
    gens, cfg, image = parts
    codes = _renderer(parts, 2).encode_styles([image, image[::-1].copy()])
    with torch.inference_mode():
        expected = gens.gen_b.encode_style(torch.from_numpy(image)[None, None] * 2 - 1)[0].numpy()
    assert codes.shape == (2, cfg.model.style_dim) and np.allclose(codes[0], expected, atol=1e-5)
    assert not np.allclose(codes[0], codes[1])


def test_compiled_kernels_cached_for_one_vector_isa_are_not_served_to_another(monkeypatch, tmp_path):
    """Issue 23: with ATEN_CPU_CAPABILITY=avx2 (or a cache folder shared with an AVX-512 machine),
    inductor's FX graph cache served kernels written for 16-float AVX-512 steps, rebuilt them for
    8-float AVX2 vectors, and --compile rendered NaN images. Two compiles into one fresh cache
    folder, the second as a new process would see it (in-memory caches cleared), under AVX2."""
    from torch._inductor.cpu_vec_isa import valid_vec_isa_list
    from torch._inductor.utils import clear_caches

    widths = {isa.bit_width() for isa in valid_vec_isa_list()}
    if 256 not in widths or max(widths) <= 256:
        pytest.skip("needs a CPU with a vector ISA wider than AVX2 (and AVX2)")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    x = torch.linspace(-1, 1, 16 * 37).view(37, 16)

    def layer(x):
        return torch.tanh(x * 3.0) + x.sum(dim=1, keepdim=True)

    assert torch.allclose(compiled(layer)(x), layer(x), atol=1e-5)
    torch._dynamo.reset()
    clear_caches()
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert torch.allclose(compiled(layer)(x), layer(x), atol=1e-5)  # old code: 1e35 or NaN here
    torch._dynamo.reset()
    clear_caches()
