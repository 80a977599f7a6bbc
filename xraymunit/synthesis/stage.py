"""Stage 3: many diverse translations of each source image, with provenance.

    checkpoint + cohort/ ─synthesize→ synth/ (images/, manifest.parquet, synthesis.json)

Each source image (normal, for a2b) is encoded once; its content code is rendered with
N style codes of the target domain in batches. Style codes come from the N(0, I) prior
(default), from real reference images (example-guided), or from a path between two
codes (`interpolate`). Every output's style vector is recorded, so any image can be
regenerated; the same seed, checkpoint, inputs and batch size give the same bytes on one
device and precision, however many styles are asked for (see Renderer.batches), and however
many processes render them (torchrun: see parts.py).

The parts: `prepare` (checkpoint, sources, style codes: what to render), `execute` (the
Renderer renders, the Writer writes, in source order), `finish` (the manifest and the run
record). On SIGTERM the current batches finish, their images and rows are kept, and
`Stopped` is raised: the rerun resumes.
"""

from __future__ import annotations

import collections
import contextlib
import inspect
import json
import logging
import time
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from xraymunit import __version__
from xraymunit import checkpoint as checkpoints
from xraymunit.io import atomic, diskspace, outdir
from xraymunit.io.cohort import MANIFEST, Cohort
from xraymunit.progress import progress
from xraymunit.runtime import apply_threads, progress_enabled
from xraymunit.stopping import Stopped, stop_requests
from xraymunit import distributed
from xraymunit.distributed import Group
from xraymunit.synthesis import parts
from xraymunit.synthesis.options import (DIRECTIONS, FORMATS, MAX_STYLES, SynthesisError,
                                         SynthesizeOptions)
from xraymunit.synthesis.plan import RunIdentity, SourcePlan, StyleCodes, plan_sources, share
from xraymunit.synthesis.renderer import (Renderer, auto_batch_size, direction_networks, render_threads,
                                          uses_bf16)
from xraymunit.synthesis.styles import file_key, load_reference, random_styles, slerp
from xraymunit.synthesis.writer import Writer, wait_bounded, write_manifest

log = logging.getLogger(__name__)

__all__ = ["DIRECTIONS", "FORMATS", "MAX_STYLES", "SynthesisError", "SynthesisResult", "SynthesizeOptions",
           "auto_batch_size", "file_key", "load_reference", "random_styles", "render_threads",
           "run", "slerp", "synthesize"]

RUN_FILE = "synthesis.json"
GUARD = ("images", MANIFEST, RUN_FILE)


@dataclass
class SynthesisResult:
    out: Path
    manifest: pd.DataFrame
    generated: int  # images written by this call (all processes of a launch)
    skipped: int  # images already present (resumed)
    seconds: float

    def __repr__(self) -> str:  # one line: the manifest is a table (print result.manifest to see it)
        return (f"SynthesisResult({self.out}: {len(self.manifest)} images listed, {self.generated} written now, "
                f"{self.skipped} already there; {self.seconds:.1f} s)")


@dataclass
class Prepared:
    """Everything `execute` needs: what to render, with what, and the run's identity."""

    out: Path
    run: RunIdentity
    record: dict  # synthesis.json
    rows: pd.DataFrame  # every source, in manifest order
    data: Cohort
    codes: StyleCodes
    renderer: Renderer


@dataclass
class Tally:
    records: list = field(default_factory=list)
    generated: int = 0
    skipped: int = 0


def synthesize(checkpoint, cohort, out, **options) -> SynthesisResult:
    """Translate every `split` image of the source domain into N images of the target domain.

    checkpoint: a `xraymunit train` checkpoint (networks rebuilt from its config), a run folder
    (its best.pt when quality tracking saved one, else last.pt), or RUN/best, RUN/last. cohort:
    the cohort folder of the sources. out: the output folder (rerunning resumes). The keyword
    options and their defaults are the fields of `SynthesizeOptions` (n_styles=20, split,
    direction, seed, references, interpolate, formats, batch_size, device, precision, compile,
    limit, render_threads, threads, progress). Under torchrun every process renders its share.
    """
    return run(SynthesizeOptions(checkpoint=checkpoint, cohort=cohort, out=out, **options))


def _signature() -> inspect.Signature:
    """synthesize's documented signature, read from SynthesizeOptions (defaults declared once)."""
    params = []
    for f in fields(SynthesizeOptions):
        positional = f.name in ("checkpoint", "cohort", "out")
        default = f.default_factory() if f.default_factory is not MISSING else f.default  # type: ignore[misc]
        params.append(inspect.Parameter(
            f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD if positional else inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty if positional else default, annotation=f.type))
    return inspect.Signature(params, return_annotation=SynthesisResult)


synthesize.__signature__ = _signature()  # type: ignore[attr-defined]


def run(opts: SynthesizeOptions) -> SynthesisResult:
    """The stage for one options object (the CLI and the pipeline come here)."""
    t0 = time.perf_counter()
    opts.check()
    apply_threads(opts.threads)
    checkpoint_path = checkpoints.resolve(opts.checkpoint)
    group, device = distributed.join(opts.device)
    try:
        prep = prepare(opts, checkpoint_path, device)
        with _hold(prep, group) as leader:
            with Writer(prep.out, prep.run, check_links=not leader) as writer, stop_requests() as stop:
                tally = execute(prep, group, writer, stop, progress_enabled(opts.progress) and leader)
            return finish(prep, group, tally, stop.requested, time.perf_counter() - t0)
    finally:
        distributed.leave(group)


def prepare(opts: SynthesizeOptions, checkpoint_path: Path, device) -> Prepared:
    """Load the generators, select the sources, encode references: nothing is written yet."""
    loaded = checkpoints.load_generators(checkpoint_path, device)
    source_label, target_label, encoder, decoder = direction_networks(loaded.gens, loaded.domain_a,
                                                                      loaded.domain_b, opts.direction)
    size = loaded.image_size
    data = Cohort.open(opts.cohort)
    rows = data.select(None if opts.split == "all" else opts.split, source_label)
    rows = rows.sort_values("image_key").reset_index(drop=True)
    if opts.limit is not None:
        rows = rows.head(opts.limit)
    if rows.empty:
        raise SynthesisError(f"no '{source_label}' images in split '{opts.split}' of {data.root}")
    bf16 = uses_bf16(opts.precision, device)
    renderer = Renderer(encoder, decoder, device, size, bf16=bf16, batch_size=opts.batch_size,
                        compile=opts.compile, threads=opts.render_threads, change_maps=opts.change_maps)
    mode, ref_styles, ref_keys = opts.style_mode, None, ()
    if opts.references:
        ref_styles = renderer.encode_styles([load_reference(r, size) for r in opts.references])
        ref_keys = tuple(file_key(r) for r in opts.references)
    codes = StyleCodes(mode, opts.seed, loaded.model.style_dim, opts.n_styles, opts.interpolate, ref_styles, ref_keys)
    ckpt_sha, step = loaded.sha256, loaded.step
    log.info("synthesizing from %s (step %d)", checkpoint_path, step)  # which checkpoint: last or an explicit best
    run_id = RunIdentity(ckpt_sha, step, opts.direction, source_label, target_label, mode, opts.seed, size,
                         opts.formats, opts.change_maps)
    record = {
        "xraymunit": __version__, "checkpoint_sha256": ckpt_sha, "checkpoint_step": step,
        "direction": opts.direction, "source_label": source_label, "target_label": target_label,
        "style_mode": mode, "n_styles": opts.n_styles if mode == "random" else None,
        "interpolate": opts.interpolate or None, "references": list(ref_keys), "seed": opts.seed,
        "split": opts.split, "size": size, "formats": list(opts.formats), "precision": "bf16" if bf16 else "fp32",
        "output": loaded.model.output,
    }
    if opts.change_maps:  # only when on: folders written before the option existed still resume
        record["change_maps"] = True
    return Prepared(Path(opts.out), run_id, record, rows, data, codes, renderer)


@contextlib.contextmanager
def _hold(prep: Prepared, group: Group):
    """Rank 0 (the only process, usually) holds the folder for the run; yields whether this process does.

    The other processes of a launch wait for its word: they write only while it holds the lock
    (it waits for them at the end), and stop with its error if it could not take the folder.
    """
    if not group.main:
        error = distributed.broadcast(group, None)
        if error:
            raise SynthesisError(f"rank 0 could not start: {error}")
        with diskspace.disk_full(prep.out):
            yield False
        return
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(outdir.claim(prep.out, "synthesize", guard=GUARD))
            _claim_folder(prep.out, prep.record)
        except Exception as exc:
            distributed.broadcast(group, str(exc) or type(exc).__name__)
            raise
        distributed.broadcast(group, None)
        yield True


def execute(prep: Prepared, group: Group, writer: Writer, stop, show_progress: bool) -> Tally:
    """Render this process's sources (several at once on a CPU) and write them, recording rows in
    source order (the manifest does not depend on threads). After a stop the current batches
    finish and nothing more is rendered; the rows of every image on disk are still recorded."""
    renderer, tally = prep.renderer, Tally()
    rows = share(prep.rows, group.rank, group.world)
    bar = progress(len(rows), "synthesize", "source", bar=show_progress, lines=group.main, dynamic_ncols=True)
    in_flight, pending = collections.deque(), collections.deque()
    renderer.prepare()
    try:
        with renderer:
            for plan in plan_sources(rows, prep.run, prep.codes, prep.out):
                tally.skipped += len(plan.outputs) - len(plan.todo)
                render = plan.todo and not stop.requested  # after a stop: only list what is on disk
                future = renderer.submit(_render_source, prep, writer, plan, stop) if render else None
                in_flight.append((plan, future))
                while len(in_flight) > renderer.n_threads or (in_flight and in_flight[0][1] is None):
                    _finish_oldest(in_flight, pending, writer, tally, stop, bar)
                wait_bounded(pending)
            while in_flight:
                _finish_oldest(in_flight, pending, writer, tally, stop, bar)
            for f in pending:
                f.result()
    finally:
        for _plan, future in in_flight:
            if future is not None:
                future.cancel()
        if bar is not None:
            bar.close()
    return tally


def _render_source(prep: Prepared, writer: Writer, plan: SourcePlan, stop) -> list:
    """Render the pending styles of one source; each batch goes to the writer as soon as it is
    rendered (files appear while a long --n-styles runs). Returns the writes still running."""
    wanted = {o.j for o in plan.todo}
    writes = collections.deque()
    image = prep.data.image(plan.src.cache_index)
    codes = np.stack([o.style for o in plan.outputs])
    for indices, images, maps in prep.renderer.batches(image, codes, wanted, stop=lambda: stop.requested):
        writes.extend(writer.write(plan.src, [plan.outputs[i] for i in indices], images, maps))
        wait_bounded(writes)
    return list(writes)


def _finish_oldest(in_flight, pending, writer: Writer, tally: Tally, stop, bar) -> None:
    """Record the oldest source in flight (waiting for its rendering; its writes may be pending).
    After a stop only the outputs whose files are complete are recorded (and counted)."""
    plan, future = in_flight.popleft()
    if future is not None:
        pending.extend(future.result())
    outputs, todo = plan.outputs, plan.todo
    if stop.requested:
        while pending:
            pending.popleft().result()
        outputs = writer.written(plan.outputs)
        done = {o.key for o in outputs}
        todo = [o for o in plan.todo if o.key in done]
    tally.generated += len(todo)
    tally.records.extend(writer.rows(plan.src, outputs))
    if bar is not None:
        bar.update(1)


def finish(prep: Prepared, group: Group, tally: Tally, stopped: bool, seconds: float) -> SynthesisResult:
    """Write the manifest (rank 0, merging every process's rows) and the run record; raise Stopped
    after a stop (its rows are kept: the rerun skips their images and renders the rest)."""
    stopped = distributed.any_rank(group, stopped)
    records = tally.records
    generated, skipped = distributed.total(group, (tally.generated, tally.skipped))
    if group.enabled:
        parts.write_part(prep.out, group, records)
        group.barrier()
    if group.main:
        if group.enabled:
            order = {key: i for i, key in enumerate(prep.rows["image_key"])}
            records = parts.merge_parts(prep.out, group, order)
        manifest = write_manifest(prep.out, records)
        atomic.write_json(prep.out / RUN_FILE, {**prep.record, "status": "stopped" if stopped else "complete",
                                                 "images": len(manifest)})
        parts.remove_parts(prep.out)
    else:
        manifest = pd.DataFrame.from_records(records)
    group.barrier()  # the manifest is complete before any process returns
    if stopped:
        raise Stopped(f"{generated} new images written to {prep.out} ({len(records)} listed in its manifest); "
                      f"rerun the same command to resume")
    log.info("synthesized %d images (%d already present) from step %d in %.1fs", generated, skipped,
             prep.record["checkpoint_step"], seconds)
    return SynthesisResult(prep.out, manifest, generated, skipped, seconds)


def _claim_folder(out: Path, run: dict) -> None:
    """Refuse to mix two different syntheses in one folder; a rerun of the same one resumes."""
    path = out / RUN_FILE
    if path.is_file():
        previous = json.loads(path.read_text())
        keys = [k for k in run if k != "xraymunit" and previous.get(k) != run[k]]
        if keys:
            raise SynthesisError(
                f"{out} holds a different synthesis ({', '.join(keys)} differ); choose another --out")
    elif out.exists() and any(p.name not in outdir.BOOKKEEPING and not atomic.is_temp_name(p.name)
                              for p in out.iterdir()):
        raise SynthesisError(f"{out} exists and is not a synthesis folder; choose another --out")
    if out.exists() and (stale := atomic.remove_stale_temps(out)):  # a killed run's half-written files
        log.info("removed %d temporary file(s) left by an interrupted run", stale)
    parts.remove_parts(out)  # rows of a killed launch: its images are on disk, the rerun lists them
    atomic.write_json(path, {**run, "status": "running"})
