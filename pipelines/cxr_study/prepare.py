"""Issue-12 study, step 1: the development chest X-ray set (../shared/data/cxr) as three cohorts,
and the shortcut test on each.

    python pipelines/cxr_study/prepare.py [--data ../shared/data/cxr] [--work runs/cxr_study]
                                          [--results results/cxr_nih_lowdata]

Cohorts (WORK/cohort_<name>/, ingested from PNG through xraymunit's ingest, 256 px, patient-level
splits, one shared salt):
- nih:   the NIH ChestX-ray14 part only (both labels from one source) — the primary study;
- covid: the COVID-19 Radiography Database part (normals and abnormals from different sources);
- all:   the whole set.
The shortcut test and the per-domain profile of each go to RESULTS/shortcut/ (JSON + CSV).
Needs ../shared (not part of a user's clone); the tests never run this.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import pandas as pd

from xraymunit import confounds
from xraymunit.ingestion import ingest
from xraymunit.io.cohort import Cohort
from xraymunit.io.csvfile import write_csv

REPO = Path(__file__).resolve().parents[2]
SUBSETS = {"nih": ["nih_chestxray14"], "covid": ["covid19_radiography_db"], "all": None}
LABEL_COLUMNS = ["file", "label", "source_dataset", "patient_id", "view", "age", "sex"]


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build_input(data: Path, work: Path, name: str, sources: list[str] | None) -> tuple[Path, Path]:
    """WORK/input_<name>/ (the subset's PNGs, same relative paths) and its labels CSV."""
    labels = pd.read_csv(data / "labels.csv")
    if sources:
        labels = labels[labels["source_dataset"].isin(sources)]
    folder = work / f"input_{name}"
    for rel in labels["file"]:
        _place(data / rel, folder / rel)
    csv = work / f"labels_{name}.csv"
    write_csv(labels[LABEL_COLUMNS], csv, index=False)
    return folder, csv


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "cxr"))
    p.add_argument("--work", default=str(REPO / "runs" / "cxr_study"))
    p.add_argument("--results", default=str(REPO / "results" / "cxr_nih_lowdata"))
    p.add_argument("--only", nargs="*", default=list(SUBSETS), choices=list(SUBSETS))
    p.add_argument("--window", default="auto", choices=["auto", "percentile"],
                   help="ingest's intensity window; percentile cohorts are named cohort_<name>_percentile")
    p.add_argument("--contrast", default="none", choices=["none", "equalize", "clahe"],
                   help="ingest's contrast standardisation; such cohorts are named cohort_<name>_<contrast>")
    p.add_argument("--judge", action="store_true",
                   help="also train (or reuse) the cohort's judge with the CPU recipe's settings and record "
                        "its AUROC next to the shortcut test: how much signal is left beyond the shortcut")
    args = p.parse_args(argv)
    data, work, results = Path(args.data), Path(args.work), Path(args.results)
    work.mkdir(parents=True, exist_ok=True)
    (results / "shortcut").mkdir(parents=True, exist_ok=True)
    salt = work / "salt.key"
    summary = {}
    for name in args.only:
        folder, csv = build_input(data, work, name, SUBSETS[name])
        tag = "_".join([name] + [v for v in (args.window, args.contrast) if v not in ("auto", "none")])
        cohort = work / f"cohort_{tag}"
        res = ingest(folder, cohort, labels=csv, size=256, workers=2, salt_file=salt, window=args.window,
                     contrast=args.contrast, progress=False)
        print(f"[{name}] ingest: {res.files} files, {dict(res.by_status)}")
        co = Cohort.open(cohort)
        result = confounds.shortcut_test(co)
        if args.judge:
            from xraymunit import config as C
            from xraymunit.quality import judge as J
            from xraymunit.config.train import TrainConfig

            j = J.load_or_train(co, C.load(TrainConfig, REPO / "configs" / "munit_cxr_128_cpu.yaml").quality.judge)
            result["judge"] = {k: j.info[k] for k in ("val_auroc", "test_auroc", "n_train")}
            print(f"[{tag}] {j.describe()}")
        confounds.write_shortcut_report(result, results / "shortcut" / f"{tag}.json")
        write_csv(confounds.domain_profile(co), results / "shortcut" / f"{tag}_profile.csv")
        summary[tag] = {t: {k: result["tests"][t].get(k) for k in ("auroc", "ci_low", "ci_high", "warn", "factor")}
                         for t in result.get("tests", {})}
        for line in confounds.warnings(result):
            print(f"[{tag}] {line}")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
