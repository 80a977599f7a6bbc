"""Ingest at cluster scale: N concurrent `--shard I/N` processes then `--merge` give exactly the cohort one
process gives, and pipelines/slurm/ingest_array.sh runs that same flow (its tasks with SLURM_ARRAY_TASK_ID
set and no scheduler; `submit` against a stand-in sbatch that records what it was asked).

Only the CLI is used (`python -m xraymunit ingest`), on the bundled sample at 64 px. Fields that may
legitimately differ between the two cohorts: the report's `this_run` (what this run did: decoded vs
reused, timings, merged_shards) and `salt` (whether this run created the salt file), and the cache's
`pack_signature` (which segment files, with their mtimes, the pixels were packed from).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import xraymunit.sample_data as sample

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "pipelines" / "slurm" / "ingest_array.sh"
SIZE = "64"
N = 3
REPORT_RUN_FIELDS = {"this_run", "salt"}
META_RUN_FIELDS = {"pack_signature"}


def ingest(*args: str) -> list[str]:
    return [sys.executable, "-m", "xraymunit", "ingest", *args, "--size", SIZE, "--no-progress", "-q"]


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, **kw)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> tuple[Path, Path]:
    """One process, the reference cohort, and the salt file every other cohort here shares."""
    root = tmp_path_factory.mktemp("single")
    salt = root / "salt.key"
    run(ingest(str(sample.path()), "--labels", str(sample.labels_csv()), "--out", str(root / "cohort"),
               "--salt-file", str(salt)))
    return root / "cohort", salt


def assert_same_cohort(got: Path, want: Path) -> None:
    a, b = pd.read_parquet(want / "manifest.parquet"), pd.read_parquet(got / "manifest.parquet")
    assert len(a) == 60 and (a["status"] == "ok").all()
    assert set(a["label"]) == {"normal", "abnormal"} and set(a["split"]) == {"train", "val", "test"}
    pd.testing.assert_frame_equal(b.sort_values("image_key").reset_index(drop=True),
                                  a.sort_values("image_key").reset_index(drop=True))
    pix_a, pix_b = np.load(want / "cache" / "images.npy"), np.load(got / "cache" / "images.npy")
    assert pix_a.shape == pix_b.shape == (60, int(SIZE), int(SIZE))
    ia, ib = a.set_index("image_key")["cache_index"], b.set_index("image_key")["cache_index"]
    for key, index in ia.items():
        np.testing.assert_array_equal(pix_b[int(ib[key])], pix_a[int(index)], err_msg=key)
    assert pix_a.std() > 0  # real pixels, not a blank cache that would compare equal anyway

    def without(path: Path, fields: set[str]) -> dict:
        data = json.loads(path.read_text())
        return {k: v for k, v in data.items() if k not in fields}

    assert without(got / "ingest_report.json", REPORT_RUN_FIELDS) == without(want / "ingest_report.json",
                                                                              REPORT_RUN_FIELDS)
    assert without(got / "cache" / "meta.json", META_RUN_FIELDS) == without(want / "cache" / "meta.json",
                                                                            META_RUN_FIELDS)


def test_concurrent_shards_then_merge_equal_one_process(single, tmp_path):
    cohort, salt = single
    parts = [tmp_path / f"part_{i}" for i in range(1, N + 1)]
    procs = [subprocess.Popen(ingest(str(sample.path()), "--out", str(p), "--shard", f"{i}/{N}",
                                     "--salt-file", str(salt)),
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i, p in enumerate(parts, start=1)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * N, outputs
    assert all("shard done" in o for o in outputs), outputs
    assert not (parts[0] / "manifest.parquet").exists()  # a shard stops before finalizing
    run(ingest("--merge", *map(str, parts), "--labels", str(sample.labels_csv()), "--out",
               str(tmp_path / "merged"), "--salt-file", str(salt)))
    assert_same_cohort(tmp_path / "merged", cohort)
    report = json.loads((tmp_path / "merged" / "ingest_report.json").read_text())
    assert report["this_run"]["merged_shards"] == N and report["this_run"]["decoded"] == 0


def script_env(tmp_path: Path, salt: Path, path_dirs: list[Path]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(INPUT=str(sample.path()), LABELS=str(sample.labels_csv()), WORK=str(tmp_path / "work"),
               COHORT=str(tmp_path / "cohort"), SHARDS=str(N), SIZE=SIZE, SALT_FILE=str(salt),
               INGEST_ARGS="-q", XRAYMUNIT=f"{sys.executable} -m xraymunit",
               PATH=os.pathsep.join([*map(str, path_dirs), "/usr/bin", "/bin"]))
    return env


def test_slurm_script_parses():
    run(["bash", "-n", str(SCRIPT)])
    text = SCRIPT.read_text()
    assert "#SBATCH --requeue" in text and "afterok:" in text


def test_slurm_tasks_without_scheduler_equal_one_process(single, tmp_path):
    cohort, salt = single
    env = script_env(tmp_path, salt, [])
    assert shutil.which("sbatch", path=env["PATH"]) is None  # the commands run as on a node, no scheduler here
    procs = [subprocess.Popen(["bash", str(SCRIPT), "task"], env={**env, "SLURM_ARRAY_TASK_ID": str(i)},
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(1, N + 1)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * N, outputs
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == [f"shard_{i}" for i in range(1, N + 1)]
    rerun = subprocess.run(["bash", str(SCRIPT), "task"], env={**env, "SLURM_ARRAY_TASK_ID": "2"}, cwd=REPO,
                           capture_output=True, text=True, timeout=600)  # a requeued task resumes
    assert rerun.returncode == 0, rerun.stderr
    run(["bash", str(SCRIPT), "merge"], env=env)
    assert_same_cohort(tmp_path / "cohort", cohort)


def test_slurm_task_refuses_a_shard_outside_the_array(tmp_path):
    env = script_env(tmp_path, tmp_path / "salt.key", [])
    for task_id in ("0", str(N + 1), "x"):
        proc = subprocess.run(["bash", str(SCRIPT), "task"], env={**env, "SLURM_ARRAY_TASK_ID": task_id},
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "not in 1..3" in proc.stderr
    assert not (tmp_path / "work").exists()


def test_slurm_submit_chains_the_merge_after_the_array(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "sbatch.log"
    (bin_dir / "sbatch").write_text(
        "#!/bin/bash\n"
        f'echo "$*" >> "{log}"\n'
        f'n=$(wc -l < "{log}")\n'
        'echo "$((4000 + n));cluster1"\n')
    (bin_dir / "sbatch").chmod(0o755)
    env = script_env(tmp_path, tmp_path / "salt.key", [bin_dir])
    proc = run(["bash", str(SCRIPT), "submit"], env={**env, "MERGE_SBATCH_ARGS": "--cpus-per-task=2"})
    array_call, merge_call = log.read_text().splitlines()
    assert "--array=1-3" in array_call and array_call.endswith(f"{SCRIPT} task")
    assert "--dependency=afterok:4001 " in merge_call and "--cpus-per-task=2" in merge_call
    assert merge_call.endswith(f"{SCRIPT} merge")
    assert "array job 4001" in proc.stdout and "merge job 4002" in proc.stdout
