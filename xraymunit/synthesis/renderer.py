"""Rendering: a source image's content code decoded with many style codes, fast and batch-independent.

The `Renderer` owns how images are computed: the device, the precision (bf16 or fp32), the
render threads, `torch.compile`, and the fixed-shape decoder calls that make every image
independent of which other styles share its call. It knows nothing about files.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterator

import numpy as np
import torch
from torch.nn import functional as F

from xraymunit.models.blocks import cast_for_rendering
from xraymunit.runtime import amp_dtype, inductor_options
from xraymunit.synthesis.options import SynthesisError


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether rendering runs in bf16: asked for, or `auto` where bf16 is native (CUDA, bf16 CPUs)."""
    return precision == "bf16" or (precision == "auto" and amp_dtype("auto", device) is not None)


def direction_networks(gens, domain_a: str, domain_b: str, direction: str) -> tuple[str, str, object, object]:
    """(source label, target label, content encoder, decoder) of `direction`: a2b encodes with
    generator A and decodes with B; b2a the reverse. `synthesize` and `Translator` both ask here."""
    if direction == "b2a":
        return domain_b, domain_a, gens.gen_b, gens.gen_a
    return domain_a, domain_b, gens.gen_a, gens.gen_b


def auto_batch_size(size: int, device: torch.device) -> int:
    """Styles per decoder call when none is asked for.

    GPUs want wide batches. On a CPU a batch's activations must stay in cache: at 256² one
    call with 2 styles renders ~2.3× faster per image than one with 20 (BENCHMARKS.md), so
    the CPU batch holds about two 256² images' worth of pixels, and at most 8 styles: every
    call renders exactly this many (the last one padded, see `Renderer.batches`), so a wider
    batch would waste work on small `--n-styles` (5 styles at 64² would render 32).
    """
    if device.type == "cuda":
        return 20
    return max(1, min(8, (2 * 256 * 256) // (size * size)))


def render_threads(requested: int | None, device: torch.device, compiled: bool) -> tuple[int, int]:
    """(source images rendered at once, intra-op threads of each).

    On a CPU, whole images rendered side by side on one thread each beat every op split
    across all threads (4-7 % at 256² on 2 cores, BENCHMARKS.md: the glue between convs
    parallelises poorly). GPUs, and compiled rendering (its kernels bake in the thread count), take one
    image at a time. At most 8 at once (each holds one batch's activations).
    """
    cores = torch.get_num_threads()
    if requested is not None:
        n = int(requested)
    elif device.type != "cpu" or compiled:
        n = 1
    else:
        n = min(cores, 8)
    n = max(1, n)
    return n, max(1, cores // n) if n > 1 else cores


def compiled(render: Callable) -> Callable:
    """torch.compile'd rendering; a compiler failure (it shows at the first call) is a one-line error."""
    fast = torch.compile(render, dynamic=False, options=inductor_options())

    def call(*args):
        try:
            return fast(*args)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise SynthesisError(f"--compile failed ({type(exc).__name__}: {first}); rerun without --compile "
                                 f"(images already written are kept)") from exc

    return call


def to_model_input(image: np.ndarray, size: int, device: torch.device) -> torch.Tensor:
    """A [0, 1] image → the network's (1, 1, size, size) input in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="area")
    return (x * 2.0 - 1.0).to(device)


class Renderer:
    """Encode a source's content once, render it with style codes in fixed-shape batches.

    bf16: the decoder's weights are cast once, and content and styles enter as bf16 (autocast
    would cast the same operands on every call: ~15 % of a CPU render's time). The last conv +
    tanh keep fp32 weights and run in fp32 on every device (OutputConvBlock), so the images are
    float32 with fp32 resolution, not on the bf16 grid. Content and reference styles are
    encoded under autocast.
    """

    def __init__(self, encoder, decoder, device: torch.device, size: int, *, bf16: bool,
                 batch_size: int | None = None, compile: bool = False, threads: int | None = None,
                 change_maps: bool = False):
        self.encoder, self.decoder, self.device, self.size, self.bf16 = encoder, decoder, device, size, bf16
        self.change_maps = change_maps
        self.batch_size = batch_size or auto_batch_size(size, device)
        self.dtype = torch.bfloat16 if bf16 else torch.float32
        self.n_threads, self.op_threads = render_threads(threads, device, compile)
        self._compile = compile
        self._render = None  # set by prepare() (the decoder is cast then, after references are encoded)
        self._pool: ThreadPoolExecutor | None = None
        self._saved_threads: int | None = None

    def autocast(self):
        """A fresh context per use: render threads enter it concurrently."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()

    def encode_styles(self, images: list[np.ndarray]) -> np.ndarray:
        """The target domain's style codes of real images (example-guided synthesis)."""
        with torch.inference_mode(), self.autocast():
            batch = torch.cat([to_model_input(im, self.size, self.device) for im in images])
            return self.decoder.encode_style(batch).float().cpu().numpy()

    def prepare(self) -> None:
        """Cast the decoder for rendering (once) and compile it if asked."""
        if self._render is None:
            cast_for_rendering(self.decoder, self.dtype)
            self._render = compiled(self.decoder.render_parts) if self._compile else self.decoder.render_parts

    def batches(self, image: np.ndarray, codes: np.ndarray, wanted: set[int],
                stop: Callable[[], bool] = lambda: False
                ) -> Iterator[tuple[list[int], np.ndarray, np.ndarray | None]]:
        """(indices into `codes`, their images in [0, 1], their change maps or None) per decoder call
        holding a wanted index.

        An image must not depend on which styles share its decoder call (a kernel and its
        summation order may change with the batch shape: in the last bits, ~1 % of pixels).
        So style j is always rendered in row j % batch_size of the call for styles
        j - j % batch_size ... + batch_size - 1, the last call padded with zero codes (their
        outputs dropped): the same call whatever the number of codes, and whichever images a
        resumed run still has to render. `stop()` is asked before each call (SIGTERM).
        """
        self.prepare()
        size = self.batch_size
        with torch.inference_mode():
            source = to_model_input(image, self.size, self.device)  # fp32: the residual is added in fp32
            with self.autocast():
                content = self.encoder.encode_content(source)
            content = content.to(self.dtype)
            all_codes = torch.from_numpy(np.stack(codes)).to(self.device, self.dtype)
            shared = self.decoder.decoder.shared_features(content)
            for start in range(0, len(codes), size):
                keep = [i for i in range(start, min(start + size, len(codes))) if i in wanted]
                if not keep:
                    continue
                if stop():
                    return
                batch = all_codes[start:start + size]
                if len(batch) < size:
                    batch = torch.cat([batch, batch.new_zeros(size - len(batch), batch.shape[1])])
                rows = [i - start for i in keep]
                out = self._render(content, batch, shared, source)
                images = ((out.image[rows].float() + 1.0) / 2.0).clamp_(0, 1)[:, 0].cpu().numpy()
                yield keep, images, (self._change_maps(out, rows, source, images) if self.change_maps else None)

    @staticmethod
    def _change_maps(out, rows: list[int], source: torch.Tensor, images: np.ndarray) -> np.ndarray:
        """|Δ ⊙ m| of a residual model, else |translation − input|, in [0, 1] image units."""
        if out.mask is not None:
            change = (out.mask[rows] * out.delta[rows]).float().abs() / 2.0
            return change.clamp_(0, 1)[:, 0].cpu().numpy()
        base = ((source.float() + 1.0) / 2.0).clamp(0, 1)[0, 0].cpu().numpy()
        return np.abs(images - base[None])

    def render(self, image: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Every style of one source at once: (len(codes), size, size) in [0, 1]."""
        images: list = [None] * len(codes)
        for keep, rendered, _ in self.batches(image, codes, set(range(len(codes)))):
            for i, im in zip(keep, rendered):
                images[i] = im
        return np.stack(images)

    # ---- render threads: whole source images side by side, one op-thread each on a CPU

    def __enter__(self) -> "Renderer":
        self._saved_threads = torch.get_num_threads()
        self._pool = ThreadPoolExecutor(max_workers=self.n_threads)
        torch.set_num_threads(self.op_threads)
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True)
        torch.set_num_threads(self._saved_threads)
        self._pool = None

    def submit(self, fn: Callable, *args) -> Future:
        return self._pool.submit(fn, *args)
