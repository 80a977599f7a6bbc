"""Everything we want to know from a GPU, measured in one short session (GPU time is rare).

    bash benchmarks/gpu_check.sh [--out DIR] [--device auto] [--budget-s 480]   # on the GPU: <= 8 minutes
    bash benchmarks/gpu_check.sh --smoke                                        # CPU rehearsal: same code, tiny sizes

Items, in this order, each in its own process with its own time budget (an item that would
start past the total budget prints a line with status "skipped: time budget"):

  train_step           the training step at 256², batch 1 and 8, perceptual loss on and off: the
                       reference schedule ("ref", fp32) and ours (bf16 + channels_last on CUDA),
                       images/s and peak memory (torch.cuda.max_memory_allocated; peak RSS on CPU),
                       ours with speedup_vs_ref (benchmarks/train_step.py run_one)
  train_step_compile   ours at batch 1 with the perceptual loss (the paper's setting) under torch.compile
  synthesize           256², 20 styles per input: naive loop, decode only, and the whole stage with
                       16-bit PNG writing; "bound" says whether decoding or writing limits it
                       (benchmarks/synthesize.py)
  synthesize_compile   the same with --compile (core_compiled vs core)
  quality_training     the bundled sample ingested at 256², configs/munit_cxr_256.yaml (random VGG:
                       no weights are downloaded) trained for the minutes left with quality tracking
                       (train.time_limit_minutes); the line holds the first, best and last measurement

Every line names the device (GPU, or CPU model and its avx512f/avx512_bf16/amx flags), the torch
version and the dtype. Lines go to stdout and, with --out DIR (default $OUT when set), to
DIR/gpu_check.jsonl, with each item's log in DIR/logs/. --smoke runs the same code paths at 64²
(the paper-sized discriminator's smallest input), batch 1/2, 1 timed step, 4 styles and the tiny
config; on a CPU torch.compile is switched off there (TORCH_COMPILE_DISABLE=1: the compile code
path runs, the compiler, minutes on a CPU, does not). Exit status: 0 every item ran or was skipped
for time, 1 an item failed (its line says why), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "gpu_check_worker.py"
QUALITY_COLUMNS = ("step", "seconds", "images_seen", "a2b_success", "a2b_success_real_abnormal", "a2b_fd",
                   "a2b_fd_inputs", "a2b_diversity_lpips", "real_b_pairs_lpips", "a2b_content_ssim", "score",
                   "judge_val_auroc")


@dataclass
class Plan:
    """Sizes and per-item budgets (seconds) of one check: the GPU session or the --smoke rehearsal."""
    smoke: bool
    size: int
    batches: tuple[int, ...]
    steps: int
    synth_inputs: int
    synth_styles: int
    total_s: float
    budgets: dict = field(default_factory=dict)
    train_config: str = "munit_cxr_256.yaml"
    train_sets: tuple[str, ...] = ()
    quality_overhead_s: float = 75.0  # process start, judge, shortcut test, final measurement + checkpoint


def make_plan(smoke: bool, budget_s: float | None) -> Plan:
    """The default plan, its item budgets scaled by --budget-s / the default total (a slower machine, more time)."""
    plan = _default_plan(smoke)
    if budget_s == 0:  # no clock at all: every item runs to its end (what a test asserts on, on any CPU)
        plan.budgets = {k: math.inf for k in plan.budgets}
        plan.total_s = math.inf
    elif budget_s:
        plan.budgets = {k: v * budget_s / plan.total_s for k, v in plan.budgets.items()}
        plan.total_s = budget_s
    return plan


def _default_plan(smoke: bool) -> Plan:
    if smoke:
        return Plan(True, 64, (1, 2), 1, 2, 4, 150.0,
                    {"train_step_ref": 40, "train_step_ours": 40, "train_step_compile": 30, "synthesize": 40,
                     "synthesize_compile": 40, "quality_training": 90},
                    "munit_tiny_cpu.yaml",
                    ("train.steps=2", "train.log_every=1", "train.quality_every=1", "train.checkpoint_every=2",
                     "train.image_every=2", "train.keep_every=2", "quality.judge.classifier.steps=10",
                     "quality.judge.classifier.eval_every=5", "quality.judge.bootstrap=20"), 20.0)
    return Plan(False, 256, (1, 8), 10, 32, 20, 480.0,
                {"train_step_ref": 60, "train_step_ours": 60, "train_step_compile": 120, "synthesize": 45,
                 "synthesize_compile": 90, "quality_training": 600},
                "munit_cxr_256.yaml",
                ("perceptual.backbone=random", "train.steps=100000000", "train.quality_every=250",
                 "train.checkpoint_every=1000", "train.keep_every=1000000", "train.image_every=1000",
                 "data.num_workers=4"))


class Reporter:
    """Writes the JSON lines: each one carries the device, torch version and elapsed time."""

    def __init__(self, device, out: Path | None, start: float, deadline: float):
        import torch

        from xraymunit.runtime import amp_dtype, cpu_description

        self.start, self.deadline, self.failed = start, deadline, 0
        self.device_name = str(device)
        cpu = cpu_description()
        self.context = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu["cpu"],
                        "cpu": cpu["cpu"], "cpu_flags": cpu["cpu_flags"], "torch": torch.__version__}
        auto = amp_dtype("auto", device)
        self.auto_dtype = str(auto).replace("torch.", "") if auto is not None else "float32"
        self.out = out
        self.sink = None
        if out is not None:
            (out / "logs").mkdir(parents=True, exist_ok=True)
            self.sink = open(out / "gpu_check.jsonl", "a")

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def log_path(self, name: str, work: Path) -> Path:
        return (self.out or work) / "logs" / f"{name}.log"

    def emit(self, item: str, status: str, **fields) -> None:
        if status.startswith("error"):
            self.failed += 1
        record = {"item": item, "status": status, **self.context, **fields,
                  "elapsed_s": round(time.monotonic() - self.start, 2)}
        record.setdefault("dtype", self.auto_dtype)
        line = json.dumps(_finite(record))
        print(line, flush=True)
        if self.sink is not None:
            self.sink.write(line + "\n")
            self.sink.flush()


def _finite(value):
    """NaN/inf → None, so every line is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def run_process(cmd: list[str], timeout: float, log: Path, env: dict | None = None) -> tuple[list[dict], str]:
    """Run `cmd` in its own process group for at most `timeout` s: its stdout JSON lines and a status.

    On time-out the whole group (compiler workers included) is killed; lines printed before count."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as err:
        err.write(f"$ {' '.join(cmd)}\n")
        err.flush()
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)  # no install needed
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": path, **(env or {})}, start_new_session=True)
        try:
            stdout, _ = proc.communicate(timeout=max(timeout, 1.0) if math.isfinite(timeout) else None)
            status = "ok" if proc.returncode == 0 else f"error: exit {proc.returncode}, see {log.name}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            stdout, _ = proc.communicate()
            status = f"skipped: time budget ({timeout:.0f} s) ran out"
    rows = []
    for line in stdout.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return rows, status


def _compile_note(env: dict) -> str:
    if env.get("TORCH_COMPILE_DISABLE") == "1":
        return "disabled (TORCH_COMPILE_DISABLE=1): --smoke on a CPU runs the code path, not the compiler"
    return "torch.compile"


def _budget(rep: Reporter, plan: Plan, name: str) -> float:
    return min(plan.budgets[name], rep.left())


def _skip_if_late(rep: Reporter, name: str, needed: float) -> bool:
    if rep.left() >= needed:
        return False
    rep.emit(name, "skipped: time budget", budget_left_s=round(rep.left(), 1))
    return True


def _train_specs(plan: Plan, rep: Reporter, impl: str, compile_: bool, grid) -> list[dict]:
    """The GPU check times the paper's networks; the CPU rehearsal (--smoke) runs the same code on the
    tiny config's networks, which is all a rehearsal needs (and 4x less CPU in the test suite)."""
    model = plan.train_config if plan.smoke else None
    return [dict(impl=impl, size=plan.size, batch=b, perceptual=p, device_name=rep.device_name, steps=plan.steps,
                 amp="auto", channels_last="auto", compile_=compile_, model_config=model) for b, p in grid]


def _train_row_fields(row: dict) -> dict:
    gpu = "peak_gpu_mb" in row
    return {"config": {k: row.get(k) for k in ("impl", "size", "batch", "perceptual", "compile", "model_config")},
            "images_per_s": row["images_per_s"], "step_s_median": row["step_s_median"],
            "peak_mem_mb": row["peak_gpu_mb"] if gpu else row["peak_rss_mb"],
            "peak_mem_kind": "torch.cuda.max_memory_allocated" if gpu else "process peak RSS",
            "dtype": row.get("amp", "float32").replace("fp32", "float32"),
            "channels_last": row.get("channels_last", False)}


def check_train_steps(plan: Plan, rep: Reporter, work: Path, compile_env: dict) -> None:
    """ref then ours over the grid (a process each), then ours compiled at batch 1 with perceptual."""
    grid = [(b, p) for b in plan.batches for p in (False, True)]
    if plan.smoke:  # batch 1 without, batch 2 with the perceptual loss: both code paths, half the time
        grid = [(plan.batches[0], False), (plan.batches[-1], True)]
    done: dict[str, dict] = {}
    for impl in ("ref", "ours"):
        name = f"train_step_{impl}"
        if _skip_if_late(rep, "train_step", 10):
            continue
        specs = _train_specs(plan, rep, impl, False, grid)
        rows, status = run_process([sys.executable, str(WORKER), "train", json.dumps(specs)],
                                   _budget(rep, plan, name), rep.log_path(name, work))
        for spec, row in zip(specs, rows + [None] * len(specs)):
            key = f"{spec['batch']}/{spec['perceptual']}"
            if row is None:
                rep.emit("train_step", status if status != "ok" else "error: no result",
                         config={k: spec[k] for k in ("impl", "size", "batch", "perceptual")})
                continue
            fields = _train_row_fields(row)
            if impl == "ours" and f"ref {key}" in done:
                fields["speedup_vs_ref"] = row["images_per_s"] / done[f"ref {key}"]["images_per_s"]
            done[f"{impl} {key}"] = row
            rep.emit("train_step", "ok", **fields)
    if _skip_if_late(rep, "train_step_compile", 15):
        return
    batch = next(b for b, p in grid if p)  # the smallest batch with the perceptual loss: the paper's setting
    spec = _train_specs(plan, rep, "ours", True, [(batch, True)])
    rows, status = run_process([sys.executable, str(WORKER), "train", json.dumps(spec)],
                               _budget(rep, plan, "train_step_compile"), rep.log_path("train_step_compile", work),
                               compile_env)
    if not rows:
        rep.emit("train_step_compile", status if status != "ok" else "error: no result", config=spec[0])
        return
    fields = _train_row_fields(rows[0])
    eager = done.get(f"ours {batch}/True")
    if eager:
        fields["speedup_vs_eager"] = rows[0]["images_per_s"] / eager["images_per_s"]
    rep.emit("train_step_compile", "ok", compile_note=_compile_note(compile_env), **fields)


def check_synthesis(plan: Plan, rep: Reporter, work: Path, compile_env: dict) -> None:
    """Eager synthesis (naive, decode only, whole stage with PNGs), then with --compile."""
    args = ["--device", rep.device_name, "--size", str(plan.size), "--styles", str(plan.synth_styles),
            "--inputs", str(plan.synth_inputs)]
    eager = None
    for name, extra, env in (("synthesize", [], None), ("synthesize_compile", ["--compile"], compile_env)):
        if _skip_if_late(rep, name, 10):
            continue
        rows, status = run_process([sys.executable, str(WORKER), "synth", *args, *extra],
                                   _budget(rep, plan, name), rep.log_path(name, work), env)
        if not rows:
            rep.emit(name, status if status != "ok" else "error: no result")
            continue
        rates = rows[0]["images_per_s"]
        decode = max(v for k, v in rates.items() if k.startswith("core") and k != "core_compiled")
        fields = {"config": {"size": plan.size, "styles_per_input": plan.synth_styles,
                             "inputs": plan.synth_inputs, "batch_size": rows[0]["batch_size"]},
                  "rates_images_per_s": rates, "peak_mem_mb": rows[0].get("peak_gpu_mb", rows[0]["peak_rss_mb"]),
                  "peak_mem_kind": "torch.cuda.max_memory_allocated" if "peak_gpu_mb" in rows[0]
                  else "process peak RSS"}
        if name == "synthesize":
            eager = rates
            share = max(0.0, 1.0 - rates["stage_with_png"] / decode)
            fields.update(images_per_s=rates["stage_with_png"], decode_only_images_per_s=decode,
                          naive_images_per_s=rates["naive_fp32"], time_share_outside_decoding=share,
                          bound="writing PNGs / the stage around the decoder" if share > 0.5 else "decoding")
        else:
            if "core_compiled" not in rates:
                rep.emit(name, "error: synthesize.py --compile gave no core_compiled rate")
                continue
            compiled = rates["core_compiled"]
            # what synthesize.py compiles: on a CPU with bf16 the one-image-at-a-time bf16 path, else `core`
            base_key = "core_bf16_cpu_ops_threaded" if "core_bf16_cpu_ops_threaded" in rates else "core"
            base = (eager or rates).get(base_key, rates[base_key])
            fields.update(images_per_s=compiled, eager_images_per_s=base, eager_variant=base_key,
                          compile_speedup=compiled / base,
                          compile_note=_compile_note(compile_env))
        rep.emit(name, "ok", **fields)


def check_quality_training(plan: Plan, rep: Reporter, work: Path) -> None:
    """Ingest the bundled sample, train with quality tracking for the time left, report the quality summary."""
    name = "quality_training"
    if _skip_if_late(rep, name, plan.quality_overhead_s + 15):
        return
    import xraymunit.sample_data as sample

    cohort, run = work / "cohort", work / "run"
    ingest = [sys.executable, "-m", "xraymunit", "ingest", str(sample.path()), "--labels", str(sample.labels_csv()),
              "--out", str(cohort), "--size", str(plan.size), "--workers", "1" if plan.smoke else "4",
              "--no-progress", "-q"]
    _, status = run_process(ingest, rep.left(), rep.log_path(name, work))
    if status != "ok":
        rep.emit(name, status, phase="ingest")
        return
    sets = list(plan.train_sets)
    if math.isfinite(rep.left()):  # with no budget (--budget-s 0) the configured steps alone end training
        minutes = max((rep.left() - plan.quality_overhead_s) / 60.0, 0.1)
        sets.append(f"train.time_limit_minutes={minutes:.2f}")
    train = [sys.executable, "-m", "xraymunit", "train", "--config", str(ROOT / "configs" / plan.train_config),
             "--cohort", str(cohort), "--out", str(run), "--device", rep.device_name, "--no-progress"]
    for s in sets:
        train += ["--set", s]
    _, status = run_process(train, min(rep.left(), plan.budgets[name]), rep.log_path(name, work))
    from xraymunit.quality.quality_csv import summarise_run

    summary = summarise_run(run)
    if summary is None:
        rep.emit(name, status if status != "ok" else "error: no quality.csv", phase="train")
        return
    if rep.out is not None:
        for f in ("quality.csv", "quality.png"):
            if (run / f).is_file():
                shutil.copy2(run / f, rep.out / f)
    last = summary["last"]
    pick = {k: {c: r.get(c) for c in QUALITY_COLUMNS} if r else None
            for k, r in (("first", summary["first"]), ("best", summary["best"]), ("last", last))}
    rep.emit(name, "ok" if status == "ok" else f"ok (train: {status})",
             config={"config": plan.train_config, "size": plan.size, "sets": sets},
             steps=last["step"], train_seconds=last["seconds"],
             images_per_s=last["images_seen"] / max(last["seconds"], 1e-9),
             n_measurements=summary["n_measurements"], monitor_share=summary["monitor_share"], **pick)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: a CPU rehearsal of every code path (~1 min)")
    ap.add_argument("--out", type=Path, default=Path(os.environ["OUT"]) if os.environ.get("OUT") else None,
                    help="folder for gpu_check.jsonl, logs/ and quality.csv/png (default: $OUT if set, else none)")
    ap.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="total time budget in seconds (default 480; --smoke: 150); item budgets scale with it; "
                         "0 = no budget: every item runs to its end, however slow the machine (the tests' smoke run)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    start = time.monotonic()
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from xraymunit.runtime import DeviceError, resolve_device

    try:
        device = resolve_device(args.device)
    except DeviceError as exc:
        print(f"gpu_check: {exc}", file=sys.stderr)
        return 2
    plan = make_plan(args.smoke, args.budget_s)
    rep = Reporter(device, args.out, start, start + plan.total_s - 5.0)
    compile_env = {}
    if plan.smoke and device.type == "cpu":
        compile_env = {"TORCH_COMPILE_DISABLE": "1"}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        check_train_steps(plan, rep, work, compile_env)
        check_synthesis(plan, rep, work, compile_env)
        check_quality_training(plan, rep, work)
    rep.emit("summary", "ok" if not rep.failed else f"error: {rep.failed} item(s) failed",
             total_s=round(time.monotonic() - start, 2), budget_s=plan.total_s, smoke=plan.smoke)
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())
