"""Several processes (issue 15): `--workers 2` and a 2-rank gloo torchrun launch give the sequential
run's metrics.json; SIGTERM keeps the finished runs, exits 143, and the rerun resumes from them."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.evaluate_data import write_cohort, write_synthetic
from xraymunit import config
from xraymunit.config.evaluate import EvaluateConfig
from xraymunit.evaluation import parallel
from xraymunit.evaluation.stage import evaluate
from xraymunit.stopping import StopFlag

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "evaluate_tiny.yaml"
STUDY = ["seeds=2", "real_abnormal=[all]", "arms=[real, synthetic]", "classifier.steps=6", "classifier.eval_every=3",
         "quality.enabled=false", "stats.bootstrap=50", "threads=1"]
# What may differ between a sequential and a parallel run of the same study: how long it took, and how it
# was executed (config.workers). Everything else in metrics.json must be identical.
HOST_FIELDS = ("timings", "elapsed_s")
EXECUTION_CONFIG = ("workers", "progress")


def comparable(metrics: dict) -> dict:
    m = {k: v for k, v in metrics.items() if k not in HOST_FIELDS}
    m["config"] = {k: v for k, v in m["config"].items() if k not in EXECUTION_CONFIG}
    return m


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "xraymunit", "evaluate", *args]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("parallel")
    cohort = write_cohort(root / "cohort", n_patients=24, size=32, seed=4)
    synth = write_synthetic(root / "synth", cohort, n_styles=2)
    cfg = config.load(EvaluateConfig, TINY, ["progress=false", *STUDY])
    evaluate(cohort, synth, root / "sequential", cfg)
    reference = json.loads((root / "sequential" / "metrics.json").read_text())
    return {"cohort": cohort, "synth": synth, "reference": reference}


def test_each_rank_takes_a_deterministic_share():
    jobs = list(range(7))
    shares = [parallel.share(jobs, r, 3) for r in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(sum(shares, [])) == jobs


def test_workers_get_one_gpu_each_round_robin(monkeypatch):
    monkeypatch.setattr(parallel.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(parallel.torch.cuda, "device_count", lambda: 2)
    assert [parallel.worker_device("cuda", i) for i in range(3)] == ["cuda:0", "cuda:1", "cuda:0"]
    assert parallel.worker_device("auto", 1) == "cuda:1" and parallel.worker_device("cpu", 1) == "cpu"
    monkeypatch.setattr(parallel.torch.cuda, "is_available", lambda: False)
    assert parallel.worker_device("auto", 1) == "auto"  # resolved to CPU (or MPS) by the worker


def test_cpu_threads_are_shared_out(monkeypatch):
    monkeypatch.setattr(parallel, "resolve_threads", lambda: (8, "8 CPUs"))  # the process's CPUs (runtime's rule)
    assert parallel.cpu_threads(EvaluateConfig(), 2) == 4 and parallel.cpu_threads(EvaluateConfig(), 16) == 1
    assert parallel.cpu_threads(EvaluateConfig(threads=3), 2) == 3  # an explicit setting wins


def test_two_workers_give_the_sequential_metrics(data, tmp_path):
    cfg = config.load(EvaluateConfig, TINY, ["progress=false", *STUDY, "workers=2"])
    metrics = evaluate(data["cohort"], data["synth"], tmp_path / "workers", cfg)
    written = json.loads((tmp_path / "workers" / "metrics.json").read_text())
    assert written["config"]["workers"] == 2 and metrics["resumed_runs"] == 0
    assert len(list((tmp_path / "workers" / "runs").glob("*.npz"))) == 4
    assert comparable(written) == comparable(data["reference"])


def test_two_gloo_ranks_under_torchrun_give_the_sequential_metrics(data, tmp_path):
    out = tmp_path / "ranks"
    args = ["--cohort", str(data["cohort"]), "--synthetic", str(data["synth"]), "--out", str(out), "--config",
            str(TINY), "--no-progress", *[a for s in STUDY for a in ("--set", s)]]  # the reference's device (auto)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "xraymunit", "evaluate", *args]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("report: ") == 1  # rank 0 reports, once
    written = json.loads((out / "metrics.json").read_text())
    assert comparable(written) == comparable(data["reference"])


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_keeps_finished_runs_exits_143_and_the_rerun_resumes(data, tmp_path, workers):
    out = tmp_path / "stopped"
    args = ["--cohort", str(data["cohort"]), "--out", str(out), "--config", str(TINY), "--device", "cpu",
            "--no-progress", "--workers", workers, "--seeds", "2", "--real-abnormal", "all", "--set", "arms=[real, classical]",
            "--set", "classifier.steps=60", "--set", "classifier.eval_every=30", "--set", "quality.enabled=false",
            "--set", "stats.bootstrap=50", "--set", "threads=1"]
    proc = subprocess.Popen(cli(*args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not list((out / "runs").glob("*.npz")) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, "the study finished before it could be stopped: make it longer"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err[-2000:]
    kept = len(list((out / "runs").glob("*.npz")))
    assert 1 <= kept < 4 and not (out / "metrics.json").exists()
    line = f"xraymunit evaluate: stopped: SIGTERM: {kept} of 4 classifier run(s) finished and kept in {out / 'runs'}"
    assert line in err and "rerun the same command to resume" in err
    rerun = subprocess.run(cli(*args), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert json.loads((out / "metrics.json").read_text())["resumed_runs"] == kept


def test_a_killed_worker_is_reported_as_killed_not_as_logged_above():
    """Issue 23 item 16: a SIGKILLed worker (the OOM killer, kill -9) logs nothing, yet the line said
    "their error is logged above". Real processes: one killed with SIGKILL, one exiting with status 3."""
    ctx = multiprocessing.get_context("fork")  # the supervision is what is tested; fork starts fast
    killed = ctx.Process(target=time.sleep, args=(60,), name="evaluate-worker-0")
    failed = ctx.Process(target=sys.exit, args=(3,), name="evaluate-worker-1")
    for p in (killed, failed):
        p.start()
    os.kill(killed.pid, signal.SIGKILL)
    with pytest.raises(parallel.WorkerFailed) as exc:
        parallel.supervise([killed, failed], StopFlag())
    message = str(exc.value)
    assert "evaluate-worker-0 was killed by SIGKILL (9, often the out-of-memory killer): it logged nothing" in message
    assert "evaluate-worker-1 exited with status 3: its error is printed above" in message
    assert "logged above" not in message
