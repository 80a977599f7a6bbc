"""The pilots' table: each pilot's last quality measurement (and its first), rendered from its quality.csv.

    python pipelines/cxr_equalized/pilot_table.py [RESULTS_DIR]   # default results/cxr_nih_equalized/pilots

Writes RESULTS_DIR/pilots.json (the numbers, each traceable to a quality.csv row) and
RESULTS_DIR/pilots.md (the same numbers as a table, rendered from pilots.json).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from xraymunit.quality.quality_csv import read_quality_csv

ORDER = ("base", "aug", "resid", "both", "resid_div", "resid_noid")
COLUMNS = [  # (quality.csv column, header, format)
    ("step", "steps", "{:.0f}"), ("seconds", "train s", "{:.0f}"),
    ("a2b_success", "judged abnormal", "{:.2f}"), ("a2b_fd", "FD", "{:.1f}"),
    ("a2b_diversity_lpips", "diversity LPIPS", "{:.3f}"), ("a2b_diversity_ms_ssim", "1 − MS-SSIM", "{:.3f}"),
    ("a2b_content_ssim", "content SSIM", "{:.3f}"), ("a2b_mask_area", "mask area", "{:.2f}"),
    ("a2b_change_inside", "change in", "{:.3f}"), ("a2b_change_outside", "change out", "{:.3f}"),
    ("a2b_change_mean", "change mean", "{:.3f}"),
]
YARDSTICKS = [("a2b_success_real_abnormal", "judged abnormal: real abnormal"),
              ("a2b_success_real_normal", "judged abnormal: real normal"),
              ("a2b_fd_inputs", "FD of the untranslated inputs"),
              ("real_b_pairs_lpips", "LPIPS-style between two real abnormal patients"),
              ("real_b_pairs_ms_ssim", "1 − MS-SSIM between two real abnormal patients"),
              ("content_ssim_unrelated", "content SSIM between two patients")]


def _cell(value: float, fmt: str) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else fmt.format(value)


def _finite(value):
    """NaN (an empty quality.csv cell) → null: strict JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return None if isinstance(value, float) and not math.isfinite(value) else value


def gather(results: Path) -> dict:
    pilots = {}
    for name in ORDER:
        csv = results / name / "quality.csv"
        if not csv.is_file():
            continue
        rows = read_quality_csv(csv)
        overrides = (results / name / "overrides.txt").read_text().strip() if (results / name / "overrides.txt").is_file() else ""
        pilots[name] = {"overrides": overrides, "quality_csv": f"{name}/quality.csv",
                        "first": rows[0], "last": rows[-1], "n_measurements": len(rows)}
    return pilots


def render(pilots: dict) -> str:
    lines = ["| pilot | measurement | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
             "|---|---|" + "---:|" * len(COLUMNS)]
    for name, p in pilots.items():
        for which in ("first", "last"):
            row = p[which]
            lines.append(f"| {name} | {which} | " + " | ".join(_cell(row.get(c), f) for c, _, f in COLUMNS) + " |")
    if pilots:
        any_row = next(iter(pilots.values()))["last"]
        lines += ["", "Yardsticks (real val images, the same for every pilot): " + "; ".join(
            f"{label} {_cell(any_row.get(col), '{:.3f}')}" for col, label in YARDSTICKS) + "."]
    lines += ["", "Overrides of each pilot (on top of pipelines/cxr_equalized/pilots.sh's BASE):"]
    lines += [f"- `{name}`: {p['overrides'] or '(none: the CPU recipe at 64²)'}" for name, p in pilots.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    results = Path(argv[0]) if argv else Path("results/cxr_nih_equalized/pilots")
    pilots = gather(results)
    (results / "pilots.json").write_text(json.dumps(_finite(pilots), indent=1, allow_nan=False) + "\n")
    (results / "pilots.md").write_text(render(pilots))
    print(render(pilots))


if __name__ == "__main__":
    main(sys.argv[1:])
