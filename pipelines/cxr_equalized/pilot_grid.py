"""A pilot's look at its translations: each val input, its styles, and their change maps (one PNG).

    python pipelines/cxr_equalized/pilot_grid.py SYNTH_DIR COHORT OUT_PNG
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cxr_study"))
from results_files import compact_png  # noqa: E402
from xraymunit.evaluation.report import plot_styles_grid
from xraymunit.io.cohort import Cohort, SyntheticSet


def main(synth_dir: str, cohort_dir: str, out_png: str) -> None:
    synth, cohort = SyntheticSet.open(synth_dir), Cohort.open(cohort_dir)
    by_key = cohort.ok().set_index("image_key")
    grid = {"inputs": [], "styles": [], "change_maps": []}
    for key, rows in synth.manifest.groupby("source_image_key", sort=True):
        source = cohort.image(by_key.loc[key, "cache_index"])
        grid["inputs"].append(source)
        grid["styles"].append([synth.image(r) for _, r in rows.iterrows()])
        grid["change_maps"].append([synth.change_map(r, source) for _, r in rows.iterrows()])
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    plot_styles_grid(Path(out_png), grid)
    compact_png(Path(out_png), Path(out_png))  # results folders stay small


if __name__ == "__main__":
    main(*sys.argv[1:4])
