"""benchmarks/gpu_check.sh: every item prints a strict JSON line with the device, torch, dtype and positive
measurements (the --smoke rehearsal on a CPU), and the total time budget holds: items that would run past
it print a "skipped: time budget" line instead.

The smoke run gets --budget-s 0 (no clock): every item runs to its end, so what the test asserts is what
ran, never how fast the machine is (a 2-core CPU without AVX-512 once turned a slow item into a skipped
one under a 600 s budget). The subprocess time-outs only guard against hangs. The budget itself is
tested on the script's own clock: the `summary` line's total_s against --budget-s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
ITEMS = {"train_step", "train_step_compile", "synthesize", "synthesize_compile", "quality_training", "summary"}
CONTEXT = ("item", "status", "device", "cpu", "cpu_flags", "torch", "dtype", "elapsed_s")


def gpu_check(out: Path, *args: str, timeout: float) -> tuple[subprocess.CompletedProcess, list[dict]]:
    proc = subprocess.run(["bash", str(SCRIPT), "--out", str(out), "--device", "cpu", *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**{k: v for k, v in os.environ.items() if k != "OUT"},
                               "XRAYMUNIT_PYTHON": sys.executable})
    lines = [json.loads(line, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
             for line in proc.stdout.splitlines()]
    for line in lines:
        assert set(CONTEXT) <= set(line), line
        assert line["device"] and line["torch"] and isinstance(line["cpu_flags"], list)
    assert (out / "gpu_check.jsonl").read_text().splitlines() == proc.stdout.splitlines()
    return proc, lines


def positive(*values) -> bool:
    return all(isinstance(v, (int, float)) and v > 0 for v in values)


@pytest.mark.slow
def test_smoke_measures_every_item(tmp_path):
    proc, lines = gpu_check(tmp_path, "--smoke", "--budget-s", "0", timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {line["item"] for line in lines} == ITEMS
    assert all(line["status"] == "ok" for line in lines), [l for l in lines if l["status"] != "ok"]

    steps = [l for l in lines if l["item"] == "train_step"]
    assert sorted((l["config"]["impl"], l["config"]["batch"], l["config"]["perceptual"]) for l in steps) == [
        ("ours", 1, False), ("ours", 2, True), ("ref", 1, False), ("ref", 2, True)]
    for line in steps:
        assert positive(line["images_per_s"], line["step_s_median"], line["peak_mem_mb"]), line
        assert line["dtype"] in ("float32", "bfloat16")
    assert all(positive(l["speedup_vs_ref"]) for l in steps if l["config"]["impl"] == "ours")
    assert all(l["dtype"] == "float32" for l in steps if l["config"]["impl"] == "ref")
    assert all(l["config"]["model_config"] == "munit_tiny_cpu.yaml" for l in steps)  # a rehearsal: the tiny networks

    by_item = {l["item"]: l for l in lines}
    comp = by_item["train_step_compile"]
    assert comp["config"]["compile"] is True and positive(comp["images_per_s"], comp["speedup_vs_eager"])
    assert "disabled" in comp["compile_note"]  # a CPU smoke run never waits for the compiler

    synth = by_item["synthesize"]
    assert positive(synth["images_per_s"], synth["decode_only_images_per_s"], synth["naive_images_per_s"],
                    synth["peak_mem_mb"])
    assert 0 <= synth["time_share_outside_decoding"] < 1 and synth["bound"] in ("decoding",
                                                                                "writing PNGs / the stage around the decoder")
    assert positive(by_item["synthesize_compile"]["images_per_s"], by_item["synthesize_compile"]["compile_speedup"])

    quality = by_item["quality_training"]
    assert quality["steps"] == 2 and quality["n_measurements"] >= 1
    assert positive(quality["images_per_s"], quality["train_seconds"])
    assert 0 <= quality["last"]["a2b_success"] <= 1 and quality["best"] is not None
    assert (tmp_path / "quality.csv").is_file() and (tmp_path / "logs" / "synthesize.log").is_file()
    assert by_item["summary"]["budget_s"] is None  # "no budget" reaches the JSON as null, not Infinity
    assert not any("time_limit_minutes" in s for s in quality["config"]["sets"])


REAP_SLACK_S = 3.0  # killing and waiting for one process group: small beside any item's own run


def test_budget_is_never_exceeded(tmp_path):
    proc, lines = gpu_check(tmp_path, "--smoke", "--budget-s", "30", timeout=300)  # time-out: a hang guard
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {line["item"] for line in lines} == ITEMS  # every item says what became of it
    skipped = [l for l in lines if l["status"].startswith("skipped: time budget")]
    assert skipped and lines[-1]["item"] == "summary" and lines[-1]["budget_s"] == 30
    # Nothing runs past the budget, whatever the machine's speed: every line after the 30 s is a skip (an item
    # killed at the budget's end says so too) or the summary. The script's clock starts before its imports: a
    # machine so slow that start-up alone spends the budget skips every item, so the bound is measured from
    # whichever comes later; an item killed at the end is reaped (its process group waited for) just after it.
    assert all(l["status"].startswith("skipped") or l["item"] == "summary" for l in lines if l["elapsed_s"] > 30)
    start_up = lines[0]["elapsed_s"] if lines[0]["status"].startswith("skipped") else 0.0
    assert lines[-1]["total_s"] <= max(30.0, start_up) + REAP_SLACK_S
