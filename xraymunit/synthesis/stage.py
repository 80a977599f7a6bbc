"""Stage 3: many diverse translations of each source image, with provenance.

    checkpoint + cohort/ ─synthesize→ synth/ (images/, manifest.parquet, synthesis.json)

Each source image (normal, for a2b) is encoded once; its content code is rendered with
N style codes of the target domain in batches. Style codes come from the N(0, I) prior
(default), from real reference images (example-guided), or from a path between two
codes (`interpolate`). Every output's style vector is recorded, so any image can be
regenerated; the same seed, checkpoint, inputs and batch size give the same bytes on one
device and precision, however many styles are asked for (see render_source).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from xraymunit import __version__, checkpoint, config
from xraymunit.config.train import TrainConfig
from xraymunit.data.datasets import stable_seed
from xraymunit.errors import XraymunitError
from xraymunit.io import atomic, export, outdir
from xraymunit.io.cohort import MANIFEST, Cohort
from xraymunit.models import MunitGenerators
from xraymunit.models.blocks import cast_for_rendering
from xraymunit.training.stage import amp_dtype

log = logging.getLogger(__name__)

DIRECTIONS = ("a2b", "b2a")
FORMATS = ("png", "dicom")
RUN_FILE = "synthesis.json"
MAX_STYLES = 1000  # styles per source image (--n-styles, --interpolate K, --reference images), at most


class SynthesisError(XraymunitError):
    """Synthesis cannot run with these arguments or inputs."""


@dataclass
class SynthesisResult:
    out: Path
    manifest: pd.DataFrame
    generated: int  # images written by this call
    skipped: int  # images already present (resumed)
    seconds: float


# --------------------------------------------------------------------------- model from a checkpoint


def load_generators(path: str | Path, device: torch.device) -> tuple[MunitGenerators, TrainConfig, dict]:
    """Rebuild both generators from a checkpoint's own config (no config file needed)."""
    state = checkpoint.load(path)
    try:
        cfg = config.from_dict(TrainConfig, state["config"])
    except config.ConfigError as exc:
        raise checkpoint.CheckpointError(f"{path}: its config cannot be read by this version ({exc})") from None
    # Before building anything: arguments in bounds, then every stored tensor's name and shape
    # equal to what those arguments build (on the meta device: shapes only, no memory), so a
    # damaged or falsified checkpoint is one line, never a runaway build or a mismatch dump.
    if not isinstance(state["config"], dict) or not isinstance(state["config"].get("model"), dict):
        raise checkpoint.CheckpointError(f"{path}: its config has no 'model' section (damaged, or not written by "
                                         f"xraymunit train)")
    checkpoint.check_model_args(path, vars(cfg.model), cfg.data.load_size)
    with torch.device("meta"):
        expected = MunitGenerators(**cfg.model.generator_kwargs())
    models = state["models"] if isinstance(state["models"], dict) else {}
    for name in ("gen_a", "gen_b"):
        checkpoint.check_weights(path, name, getattr(expected, name).state_dict(), models.get(name))
    gens = MunitGenerators(**cfg.model.generator_kwargs())
    try:
        gens.gen_a.load_state_dict(models["gen_a"])
        gens.gen_b.load_state_dict(models["gen_b"])
    except (KeyError, RuntimeError) as exc:  # not expected after the checks above
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise checkpoint.CheckpointError(f"{path}: generator weights do not fit its config ({first})") from None
    gens.to(device).eval().requires_grad_(False)
    return gens, cfg, state


# --------------------------------------------------------------------------- style codes


def random_styles(seed: int, source_key: str, n: int, dim: int) -> np.ndarray:
    """N(0, I) codes of one source image; code j is a pure function of (seed, source, j).

    So reruns agree, and asking for more styles adds codes without changing the first ones.
    """
    return np.stack([np.random.default_rng(stable_seed(seed, "style", source_key, j)).standard_normal(dim)
                     for j in range(n)]).astype(np.float32)


def slerp(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """`steps` codes from a to b (inclusive) along the great circle, norm interpolated linearly.

    Spherical, not linear: the midpoint of a straight line between two N(0, I) codes has a
    norm atypically small for the prior (it falls in the low-density centre); slerp keeps
    every intermediate code at a typical norm.
    """
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    ua, ub = a / max(na, 1e-12), b / max(nb, 1e-12)
    omega = math.acos(float(np.clip(np.dot(ua, ub), -1.0, 1.0)))
    out = []
    for t in np.linspace(0.0, 1.0, steps):
        if omega < 1e-6:
            direction = (1 - t) * ua + t * ub
        else:
            direction = (math.sin((1 - t) * omega) * ua + math.sin(t * omega) * ub) / math.sin(omega)
        out.append(direction * ((1 - t) * na + t * nb))
    return np.stack(out).astype(np.float32)


def load_reference(path: str | Path, size: int) -> np.ndarray:
    """A reference radiograph (DICOM, PNG or JPEG) through the ingest pixel path → (size, size) in [0, 1]."""
    from xraymunit.data.transforms import ingest_transforms

    path = Path(path)
    if not path.is_file():
        raise SynthesisError(f"reference image not found: {path}")
    try:
        out = ingest_transforms(size=size, header_key=None)({"image": str(path)})["image"]
    except Exception as exc:  # noqa: BLE001 - any unreadable reference is a user error
        cause = exc  # MONAI wraps the reader's error in "applying transform <... object at 0x...>"
        while cause.__cause__ is not None:
            cause = cause.__cause__
        detail = (str(cause).strip().splitlines() or [""])[0][:200] or type(cause).__name__
        raise SynthesisError(f"cannot read reference image {path}: {detail}") from None
    return np.asarray(out, dtype=np.float32).reshape(size, size)


def file_key(path: str | Path) -> str:
    """Pseudonymous key of a reference file (its content hash, never its path)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


# --------------------------------------------------------------------------- the stage


def auto_batch_size(size: int, device: torch.device) -> int:
    """Styles per decoder call when none is asked for.

    GPUs want wide batches. On a CPU a batch's activations must stay in cache: at 256² one
    call with 2 styles renders ~2.3× faster per image than one with 20 (BENCHMARKS.md), so
    the CPU batch holds about two 256² images' worth of pixels, and at most 8 styles: every
    call renders exactly this many (the last one padded, see `render_source`), so a wider batch
    would waste work on small `--n-styles` (5 styles at 64² would render 32).
    """
    if device.type == "cuda":
        return 20
    return max(1, min(8, (2 * 256 * 256) // (size * size)))


def _render_threads(requested: int | None, device: torch.device, compiled: bool) -> tuple[int, int]:
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


def _compiled(render):
    """torch.compile'd rendering; a compiler failure (it shows at the first call) is a one-line error."""
    compiled = torch.compile(render, dynamic=False)

    def call(*args):
        try:
            return compiled(*args)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise SynthesisError(f"--compile failed ({type(exc).__name__}: {first}); rerun without --compile "
                                 f"(images already written are kept)") from exc

    return call


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SynthesisError(f"device {name!r} requested but CUDA is not available (use --device cpu)")
    return torch.device(name)


def _synth_key(*parts) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def _to_model_input(image: np.ndarray, size: int, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="area")
    return (x * 2.0 - 1.0).to(device)


@outdir.owns("synthesize", "out", guard=("images", MANIFEST, RUN_FILE))
def synthesize(checkpoint_path: str | Path, cohort: str | Path, out: str | Path, *, n_styles: int = 20,
               split: str = "train", direction: str = "a2b", seed: int = 0,
               references: Sequence[str | Path] = (), interpolate: int = 0,
               formats: Sequence[str] = ("png",), batch_size: int | None = None, device: str = "auto",
               precision: str = "auto", compile: bool = False, limit: int | None = None,
               render_threads: int | None = None, show_progress: bool = True) -> SynthesisResult:
    """Translate every `split` image of the source domain into N images of the target domain.

    Args:
        checkpoint_path: a `xraymunit train` checkpoint (networks rebuilt from its config), a run
            folder (its best.pt when quality tracking saved one, else last.pt), or RUN/best, RUN/last.
        cohort: the cohort folder the sources come from.
        out: output folder (created; rerunning with the same arguments resumes).
        n_styles: random style codes per source image (the N(0, I) prior), 1..MAX_STYLES.
        split: cohort split of the sources ("train", "val", "test" or "all").
        direction: "a2b" (domain_a → domain_b, e.g. normal → abnormal) or "b2a".
        seed: fixes every style code.
        references: real target-domain images whose *encoded* style is used instead of
            random codes (one output per reference per source).
        interpolate: K > 1 writes K codes along a slerp path between two random codes per
            source (for review) instead of N independent codes.
        formats: any of "png" (16-bit) and "dicom" (Secondary Capture).
        batch_size: styles decoded per network call; None picks `auto_batch_size`. Every call
            renders exactly this many (a source's last call padded), so the images' last bits
            depend on it, never on n_styles.
        device: "auto", "cpu", "cuda" or "cuda:N".
        precision: "auto" (bf16 on CUDA and on CPUs with native bf16, else fp32), "bf16" or
            "fp32". bf16: content encoding under autocast, rendering with the decoder cast to
            bf16 except its last conv + tanh, which run in fp32 on every device (outputs keep
            fp32 resolution). Part of the run's identity: outputs differ in the last bits.
        compile: `torch.compile` the style rendering first (~1 min of compiling at 256², then
            1.0-1.1× faster on a 2-core CPU, one image at a time: for thousands of images;
            needs a C++ compiler on CPU).
        limit: at most this many source images (the first by image_key), >= 1; None: all.
        render_threads: source images rendered at once, each in its own thread (None: on a
            CPU as many as torch has threads, up to 8, one op-thread each; on a GPU or with
            `compile`, 1). The images do not depend on it.
        show_progress: tqdm bar over source images.
    """
    import time

    t0 = time.perf_counter()
    checkpoint_path = checkpoint.resolve(checkpoint_path)
    formats = tuple(dict.fromkeys(formats))
    if direction not in DIRECTIONS:
        raise SynthesisError(f"--direction must be one of {DIRECTIONS}, got {direction!r}")
    if not formats or any(f not in FORMATS for f in formats):
        raise SynthesisError(f"--format must be png, dicom or both, got {formats}")
    if render_threads is not None and int(render_threads) < 1:
        raise SynthesisError(f"--render-threads must be at least 1, got {render_threads}")
    if not 1 <= n_styles <= MAX_STYLES:
        raise SynthesisError(f"--n-styles must be >= 1 and at most {MAX_STYLES}, got {n_styles}")
    if batch_size is not None and batch_size < 1:
        raise SynthesisError(f"--batch-size must be >= 1, got {batch_size}")
    if interpolate and (not 2 <= interpolate <= MAX_STYLES or references):
        raise SynthesisError(f"--interpolate K needs K >= 2 (at most {MAX_STYLES}) and cannot be combined with "
                             f"--reference, got K = {interpolate}")
    if len(references) > MAX_STYLES:
        raise SynthesisError(f"at most {MAX_STYLES} --reference images, got {len(references)}")
    if limit is not None and limit < 1:
        raise SynthesisError(f"--limit must be >= 1 (omit it for every source image), got {limit}")
    mode = "reference" if references else "interpolate" if interpolate else "random"
    dev = _resolve_device(device)
    out = Path(out)

    gens, cfg, state = load_generators(checkpoint_path, dev)
    ckpt_sha = checkpoint.file_sha256(checkpoint_path)
    step = int(state["step"])
    source_label, target_label = (cfg.data.domain_a, cfg.data.domain_b)
    encoder, decoder = gens.gen_a, gens.gen_b
    if direction == "b2a":
        source_label, target_label = target_label, source_label
        encoder, decoder = decoder, encoder
    size = cfg.data.load_size
    style_dim = cfg.model.style_dim
    batch_size = batch_size or auto_batch_size(size, dev)

    if split not in ("train", "val", "test", "all"):
        raise SynthesisError(f"--split must be train, val, test or all, got {split!r}")
    data = Cohort.open(cohort)
    rows = data.select(None if split == "all" else split, source_label)
    rows = rows.sort_values("image_key").reset_index(drop=True)
    if limit is not None:
        rows = rows.head(limit)
    if rows.empty:
        raise SynthesisError(f"no '{source_label}' images in split '{split}' of {data.root}")

    if precision not in ("auto", "bf16", "fp32"):
        raise SynthesisError(f"--precision must be auto, bf16 or fp32, got {precision!r}")
    use_bf16 = precision == "bf16" or (precision == "auto" and amp_dtype("auto", dev) is not None)

    def autocast():  # a fresh context per use: render threads enter it concurrently
        return torch.autocast(dev.type, dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()
    ref_styles, ref_keys = None, []
    if references:
        ref_images = [load_reference(r, size) for r in references]
        ref_keys = [file_key(r) for r in references]
        with torch.inference_mode(), autocast():
            batch = torch.cat([_to_model_input(im, size, dev) for im in ref_images])
            ref_styles = decoder.encode_style(batch).float().cpu().numpy()

    run = {
        "xraymunit": __version__, "checkpoint_sha256": ckpt_sha, "checkpoint_step": step,
        "direction": direction, "source_label": source_label, "target_label": target_label,
        "style_mode": mode, "n_styles": n_styles if mode == "random" else None,
        "interpolate": interpolate or None, "references": ref_keys, "seed": seed, "split": split,
        "size": size, "formats": list(formats), "precision": "bf16" if use_bf16 else "fp32",
    }
    _claim_folder(out, run)
    # bf16: the decoder's weights are cast once, and content and styles enter as bf16 (autocast
    # would cast the same operands, but on every call: ~15 % of a CPU render's time went to those
    # casts). The last conv + tanh keep fp32 weights and run in fp32 on every device
    # (OutputConvBlock), so the images are float32 with fp32 resolution, not on the bf16 grid.
    render_dtype = torch.bfloat16 if use_bf16 else torch.float32
    cast_for_rendering(decoder, render_dtype)
    render = _compiled(decoder.render) if compile else decoder.render

    def styles_for(source_key: str) -> tuple[np.ndarray, list[dict]]:
        if mode == "reference":
            return ref_styles, [{"reference_key": k} for k in ref_keys]
        if mode == "interpolate":
            ends = random_styles(seed, f"interp:{source_key}", 2, style_dim)
            return slerp(ends[0], ends[1], interpolate), [
                {"interp_t": float(t)} for t in np.linspace(0, 1, interpolate)]
        return random_styles(seed, source_key, n_styles, style_dim), [{} for _ in range(n_styles)]

    def render_source(src, plan, todo) -> list:
        """Render the pending styles of one source; each batch's images go to the writers as soon
        as it is rendered (files appear while a long --n-styles runs). Returns the writes still
        running. Runs in a render thread.

        An image must not depend on which styles share its decoder call (a kernel and its
        summation order may change with the batch shape: in the last bits, ~1 % of pixels).
        So style j is always rendered in row j % batch_size of the call for styles
        j - j % batch_size ... + batch_size - 1, a source's last call padded with zero codes
        (their outputs dropped): the same call whatever n_styles, and whichever images a
        resumed run still has to render (a call is made when any of its styles is missing).
        """
        missing = {p[0] for p in todo}
        writes = collections.deque()
        with torch.inference_mode():
            with autocast():
                content = encoder.encode_content(_to_model_input(data.image(src.cache_index), size, dev))
            content = content.to(render_dtype)
            codes = torch.from_numpy(np.stack([p[1] for p in plan])).to(dev, render_dtype)
            shared = decoder.decoder.shared_features(content)
            for start in range(0, len(plan), batch_size):
                part = plan[start:start + batch_size]
                keep = [i for i, p in enumerate(part) if p[0] in missing]
                if not keep:
                    continue
                batch = codes[start:start + batch_size]
                if len(part) < batch_size:
                    batch = torch.cat([batch, batch.new_zeros(batch_size - len(part), batch.shape[1])])
                y = render(content, batch, shared)[keep]
                images = ((y.float() + 1.0) / 2.0).clamp_(0, 1)[:, 0].cpu().numpy()
                writes.extend(write_images(src, [part[i] for i in keep], images))
                while len(writes) > 64:  # the writers fall behind: wait for them (bounded memory)
                    writes.popleft().result()
        return list(writes)

    def write_images(src, todo, images) -> list:
        spacing = _output_spacing(src, size)
        futures = []
        for (j, style, extra, key, rel), image in zip(todo, images):
            prov = export.Provenance(key, ckpt_sha, step, direction, mode, j, seed, target_label)
            if "png" in rel:
                futures.append(writers.submit(export.write_png, out / rel["png"], image, prov))
            if "dicom" in rel:
                futures.append(writers.submit(
                    export.write_dicom, out / rel["dicom"], image, prov,
                    study_entropy=f"{ckpt_sha}:{src.image_key}", series_entropy=f"{ckpt_sha}:{mode}:{seed}",
                    rows_spacing_mm=spacing))
        return futures

    def record_source(src, plan) -> None:
        for j, style, extra, key, rel in plan:
            records.append({
                "synth_key": key, "source_image_key": src.image_key, "source_patient_key": src.patient_key,
                "split": src.split, "direction": direction, "source_label": source_label,
                "intended_label": target_label, "style_mode": mode, "style_index": j, "seed": seed,
                "style": [float(v) for v in style], "checkpoint_sha256": ckpt_sha, "checkpoint_step": step,
                "png_path": rel.get("png"), "dicom_path": rel.get("dicom"), "size": size,
                "reference_key": extra.get("reference_key"), "interp_t": extra.get("interp_t"),
                "source_dataset": getattr(src, "source_dataset", None),
            })
        if bar is not None:
            bar.update(1)

    def finish_oldest() -> None:
        """Record the oldest source in flight (waiting for its rendering; its writes are pending)."""
        src, plan, todo, future = in_flight.popleft()
        if future is not None:
            pending.extend(future.result())
        record_source(src, plan)

    records, generated, skipped = [], 0, 0
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(rows), desc="synthesize", unit="image", dynamic_ncols=True)
    n_threads, intra_threads = _render_threads(render_threads, dev, compile)
    saved_threads = torch.get_num_threads()
    renderers = ThreadPoolExecutor(max_workers=n_threads)
    writers = ThreadPoolExecutor(max_workers=2)  # PNG/DICOM encoding overlaps the next decode
    pending, in_flight = [], collections.deque()  # in source order: the manifest does not depend on threads
    try:
        torch.set_num_threads(intra_threads)
        for src in rows.itertuples(index=False):
            styles, extras = styles_for(src.image_key)
            plan = []
            for j, (style, extra) in enumerate(zip(styles, extras)):
                key = _synth_key(ckpt_sha, direction, mode, seed, src.image_key, j, extra.get("reference_key"))
                rel = {f: f"images/{src.image_key}/{key}.{'png' if f == 'png' else 'dcm'}" for f in formats}
                plan.append((j, style, extra, key, rel))
            todo = [p for p in plan if not all((out / r).is_file() for r in p[4].values())]
            skipped += len(plan) - len(todo)
            generated += len(todo)
            in_flight.append((src, plan, todo, renderers.submit(render_source, src, plan, todo) if todo else None))
            while len(in_flight) > n_threads or (in_flight and in_flight[0][3] is None):
                finish_oldest()
            if len(pending) > 64:
                for f in pending:
                    f.result()
                pending = []
        while in_flight:
            finish_oldest()
        for f in pending:
            f.result()
    finally:
        for _src, _plan, _todo, future in in_flight:
            if future is not None:
                future.cancel()
        renderers.shutdown(wait=True)
        writers.shutdown(wait=True)
        torch.set_num_threads(saved_threads)
        if bar is not None:
            bar.close()

    manifest = pd.DataFrame.from_records(records)
    with atomic.atomic_path(out / MANIFEST) as tmp:
        manifest.to_parquet(tmp, index=False)
    run.update(status="complete", images=len(manifest))
    atomic.write_json(out / RUN_FILE, run)
    seconds = time.perf_counter() - t0
    log.info("synthesized %d images (%d already present) in %.1fs", generated, skipped, seconds)
    return SynthesisResult(out, manifest, generated, skipped, seconds)


def _claim_folder(out: Path, run: dict) -> None:
    """Refuse to mix two different syntheses in one folder; a rerun of the same one resumes."""
    path = out / RUN_FILE
    if path.is_file():
        previous = json.loads(path.read_text())
        keys = [k for k in run if k != "xraymunit" and previous.get(k) != run[k]]
        if keys:
            raise SynthesisError(
                f"{out} holds a different synthesis ({', '.join(keys)} differ); choose another --out")
    elif out.exists() and any(p.name != outdir.LOCK_NAME and not atomic.is_temp_name(p.name)
                              for p in out.iterdir()):
        raise SynthesisError(f"{out} exists and is not a synthesis folder; choose another --out")
    if out.exists() and (stale := atomic.remove_stale_temps(out)):  # a killed run's half-written files
        log.info("removed %d temporary file(s) left by an interrupted run", stale)
    atomic.write_json(path, {**run, "status": "running"})


def _output_spacing(src, size: int) -> float | None:
    """Nominal spacing of an output pixel: the source spacing × (padded side / output side)."""
    row = getattr(src, "spacing_row_mm", None)
    col = getattr(src, "spacing_col_mm", None)
    rows, cols = getattr(src, "rows", None), getattr(src, "columns", None)
    try:
        if row and col and rows and cols and not (math.isnan(row) or math.isnan(col)):
            side_mm = max(rows * row, cols * col)
            return float(side_mm / size)
    except TypeError:
        return None
    return None
