#!/usr/bin/env python
"""Issue-21 study: where do the generators change an image — a region (a finding drawn in) or all of
it (a restyling)? Measured on the change maps `synthesize --change-maps` wrote for the very images
the classifier study trains on, not on the training monitor's val inputs:

- changed area: share of pixels whose intensity moved by more than the quality monitor's threshold
  (xraymunit.quality.quality_csv.CHANGE_THRESHOLD; the monitor's own `change_measures`);
- change inside / outside that area: mean |translation − input| there;
- concentration: share of an image's total change held by its 10 % most-changed pixels (0.10 for a
  uniform change; near 1 for a finding confined to a tenth of the image);
- style overlap: correlation between the change maps of two styles of one input (near 1: every
  style changes the same pixels the same way, whatever its code).

Every number is a mean over images with a 95 % interval from a bootstrap over source images. Also
writes one picture of the same two train normals through every generator: per row, the source, two
styles and their change maps (white = a change of 25 % of the range or more).

    python pipelines/cxr_equalized/change_maps.py --study runs/cxr_equalized/study \
        --out results/cxr_nih_equalized/change_maps.json --grid results/cxr_nih_equalized/study/change_maps.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from xraymunit.io.cohort import Cohort, SyntheticSet
from xraymunit.quality.quality_csv import CHANGE_THRESHOLD
from xraymunit.quality.training_monitor import change_measures

TOP_SHARE = 0.10  # concentration: the share of total change in this share of the most-changed pixels
GRID_WHITE = 0.25  # change-map picture: a change of this much of the intensity range is drawn white


def image_measures(change: np.ndarray) -> dict:
    """Changed area, change inside/outside it (the training monitor's own measure, given the change map
    as |change − 0|) and concentration of one change map (values in [0, 1])."""
    m = change_measures(torch.from_numpy(change), torch.zeros(change.shape), None)
    flat = np.sort(change.ravel())[::-1]
    total = float(flat.sum())
    top = max(1, int(round(TOP_SHARE * flat.size)))
    return {"changed_area": m["a2b_mask_area"], "change_inside": m["a2b_change_inside"],
            "change_outside": m["a2b_change_outside"],
            "concentration": float(flat[:top].sum() / total) if total > 0 else 0.0}


def style_overlap(changes: np.ndarray) -> float:
    """Mean Pearson correlation between the change maps of every pair of styles of one source."""
    flat = changes.reshape(len(changes), -1)
    corr = np.corrcoef(flat)
    pairs = corr[np.triu_indices(len(changes), k=1)]
    return float(np.nanmean(pairs))


def bootstrap_ci(per_source: np.ndarray, n: int = 1000, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    means = [per_source[rng.integers(0, len(per_source), len(per_source))].mean() for _ in range(n)]
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def measure(synth: SyntheticSet, cohort: Cohort, sources: list[str]) -> dict:
    """Every measure over all styles of `sources` (per-source means, then a bootstrap over sources)."""
    man = synth.manifest
    index = cohort.ok().set_index("image_key")["cache_index"]
    per_source: dict[str, list[float]] = {}
    for key in sources:
        rows = man[man["source_image_key"] == key].sort_values("style_index")
        source = cohort.image(index[key])
        changes = np.stack([synth.change_map(r, source) for _, r in rows.iterrows()])
        values = pd.DataFrame([image_measures(c) for c in changes]).mean().to_dict()
        values["style_overlap"] = style_overlap(changes)
        for k, v in values.items():
            per_source.setdefault(k, []).append(v)
    out = {}
    for k, values in per_source.items():
        arr = np.asarray(values)
        low, high = bootstrap_ci(arr)
        out[k] = {"value": float(arr.mean()), "ci_low": low, "ci_high": high}
    return out


def grid(study: Path, names: list[str], cohort: Cohort, sources: list[str], path: Path) -> None:
    """Rows: (source, generator); columns: source, styles 0 and 1, their change maps."""
    index = cohort.ok().set_index("image_key")["cache_index"]
    rows = []
    for key in sources:
        for name in names:
            synth = SyntheticSet.open(study / f"synth_{name}")
            man = synth.manifest
            styles = man[man["source_image_key"] == key].sort_values("style_index").head(2)
            images = [synth.image(r) for _, r in styles.iterrows()]
            size = images[0].shape[0]
            source = cohort.image(index[key])
            small = np.asarray(Image.fromarray(source).resize((size, size), Image.BOX))
            maps = [np.clip(synth.change_map(r, source) / GRID_WHITE, 0, 1) for _, r in styles.iterrows()]
            rows.append(np.concatenate([small, *images, *maps], axis=1))
    picture = (np.concatenate(rows, axis=0) * 255).round().astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture, mode="L").save(path, optimize=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", required=True, type=Path, help="the pipeline's OUT (cohort/, synth_K_gI/)")
    p.add_argument("--sources", type=int, default=100, help="source normals measured per generator (seeded pick)")
    p.add_argument("--out", required=True, type=Path, help="JSON to write")
    p.add_argument("--grid", required=True, type=Path, help="PNG of two sources through every generator")
    args = p.parse_args(argv)
    cohort = Cohort.open(args.study / "cohort")
    names = sorted(d.name[len("synth_"):] for d in args.study.glob("synth_*") if (d / "manifest.parquet").is_file())
    if not names:
        sys.exit(f"change_maps: no finished synth_* folder in {args.study}")
    common = sorted(set.intersection(*(set(SyntheticSet.open(args.study / f"synth_{n}").manifest["source_image_key"])
                                       for n in names)))
    rng = np.random.default_rng(0)
    sources = sorted(rng.choice(common, size=min(args.sources, len(common)), replace=False))
    result = {"threshold": CHANGE_THRESHOLD, "top_share": TOP_SHARE, "grid_white": GRID_WHITE,
              "n_sources": len(sources), "interval": "95 % bootstrap over source images (1000 resamples)",
              "generators": {}}
    for name in names:
        synth = SyntheticSet.open(args.study / f"synth_{name}")
        styles = int(synth.manifest.groupby("source_image_key").size().min())
        result["generators"][name] = {"styles_per_source": styles,
                                      "checkpoint_step": int(synth.manifest["checkpoint_step"].iloc[0]),
                                      **measure(synth, cohort, sources)}
        print(name, {k: round(v["value"], 3) for k, v in result["generators"][name].items() if isinstance(v, dict)})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    grid(args.study, names, cohort, sources[:2], args.grid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
