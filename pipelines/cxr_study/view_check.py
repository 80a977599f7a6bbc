"""Issue-12 study: is the NIH part's intensity shortcut the view (AP vs PA) or the finding?

    python pipelines/cxr_study/view_check.py [--cohort runs/cxr_study/cohort_nih]
                                             [--out results/cxr_nih_lowdata/shortcut/nih_by_view.json]

The histogram-only model of the shortcut test (xraymunit.confounds), fitted on train and scored on
val, within AP images only and within PA images only (a shortcut that is the view disappears within
a view; one that is the finding stays), and the view mix per label.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from xraymunit import confounds as C
from xraymunit.evaluation import metrics as M
from xraymunit.io.cohort import Cohort

REPO = Path(__file__).resolve().parents[2]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cohort", default=str(REPO / "runs" / "cxr_study" / "cohort_nih"))
    p.add_argument("--out", default=str(REPO / "results" / "cxr_nih_lowdata" / "shortcut" / "nih_by_view.json"))
    args = p.parse_args(argv)
    co = Cohort.open(args.cohort)
    rows = co.ok()
    rows = rows[rows["label"].isin(["normal", "abnormal"])]
    out = {"view_mix": {lab: rows.loc[rows["label"] == lab, "view_position"].value_counts().to_dict()
                        for lab in ("normal", "abnormal")}, "by_view": {}}
    for view in ("AP", "PA", None):
        sub = rows if view is None else rows[rows["view_position"] == view]
        tr, va = sub[sub["split"] == "train"], sub[sub["split"] == "val"]
        f_tr, f_va = C.image_features(co, tr["cache_index"]), C.image_features(co, va["cache_index"])
        y_tr, y_va = (tr["label"] == "abnormal").to_numpy(), (va["label"] == "abnormal").to_numpy()
        W = M.bootstrap_weights(y_va, va["patient_key"].astype(str).to_numpy(), 1000, 0)
        n_eff = min(va.loc[va["label"] == d, "patient_key"].nunique() for d in ("normal", "abnormal"))
        res = {"n_val": {d: int((va["label"] == d).sum()) for d in ("normal", "abnormal")}}
        for feat in ("histogram", "intensity_p50", "intensity_mean"):
            s = C.held_out_scores(f_tr[feat], y_tr, f_va[feat])
            res[feat] = C.auroc_ci(y_va, s, W, n_eff)
        res["median_intensity"] = {d: float(np.median(f_va["intensity_p50"][(va["label"] == d).to_numpy()]))
                                   for d in ("normal", "abnormal")}
        out["by_view"][view or "all"] = res
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
