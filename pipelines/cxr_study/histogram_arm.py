"""Issue-12 study: the intensity-only control as a classifier arm.

The judge calls histogram-matched normals abnormal about as often as the generator's
translations (`intensity_control.py`). Does the classifier gain from synthetic images also come
from intensities alone? For each level K this writes a synthetic folder in synthesize's layout
(manifest.parquet + 16-bit PNGs) that mirrors the study's `synth_K` row for row — same source
normals, same style indices, same size — but whose images are the source normal histogram-matched
(scikit-image) to one of the level's K training abnormals. Then evaluate runs the same arms and
seeds with these folders as the "synthetic" images.

Since issue 21 `evaluate` has this control built in (arm `intensity_control`, on by default in the
study configs; xraymunit/evaluation/controls.py) and this script only writes it to disk with the
package's rule: the reference of a row is `controls.reference_index(synth_key, K, 0)`, matching at
the synthetic images' size. The folders behind results/cxr_nih_lowdata were written before, with a
seeded random pick of the reference per row: a rebuild pairs rows with other references.

    python pipelines/cxr_study/histogram_arm.py [--study runs/cxr_study/nih_per_level]
        [--out runs/cxr_study/histogram_arm]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from xraymunit import config as C
from xraymunit.config.train import TrainConfig
from xraymunit.data.transforms import area_resize
from xraymunit.evaluation import controls
from xraymunit.io.cohort import Cohort


def _stack(cohort: Cohort, keys, size: int) -> torch.Tensor:
    """(n, 1, size, size) cohort images by image_key, in the order given (keys may repeat)."""
    m = cohort.ok().set_index("image_key").loc[list(keys)]
    images = cohort.stack(m["cache_index"].to_numpy()).astype(np.float32)
    return torch.from_numpy(np.stack([area_resize(x, size) for x in images])[:, None])


def build_level(study: Path, level: str, out: Path) -> Path:
    """The histogram-matched twin of study/synth_<level> in out/synth_<level>."""
    synth, run = study / f"synth_{level}", study / f"train_{level}"
    cfg = C.load(TrainConfig, run / "config.yaml")
    cohort = Cohort.open(study / "cohort")
    manifest = pd.read_parquet(synth / "manifest.parquet")
    size = int(manifest["size"].iloc[0])
    manifest = manifest.sort_values("synth_key").reset_index(drop=True)
    ref_keys = sorted(cfg.data.domain_b_keys)
    images = controls.intensity_control(_stack(cohort, manifest["source_image_key"], size),
                                        _stack(cohort, ref_keys, size), manifest["synth_key"], 0, torch.float32)
    target = out / f"synth_{level}"
    rows = []
    for (_, r), image in zip(manifest.iterrows(), images):
        path = target / r["png_path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.rint(image[0].numpy() * 65535).astype(np.uint16)).save(path)
        ref = ref_keys[controls.reference_index(r["synth_key"], len(ref_keys), 0)]
        rows.append({**r.to_dict(), "style_mode": "histogram_match", "reference_key": ref,
                     "checkpoint_sha256": None, "checkpoint_step": None})
    pd.DataFrame(rows).to_parquet(target / "manifest.parquet")
    print(f"level {level}: {len(rows)} histogram-matched images → {target}")
    return target


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", default="runs/cxr_study/nih_per_level")
    p.add_argument("--out", default="runs/cxr_study/histogram_arm")
    p.add_argument("--levels", nargs="*", default=["5", "10", "25"])
    args = p.parse_args(argv)
    study, out = Path(args.study), Path(args.out)
    synthetic = []
    for level in args.levels:
        if not (out / f"synth_{level}" / "manifest.parquet").is_file():
            build_level(study, level, out)
        synthetic += ["--synthetic", f"{level}={out / f'synth_{level}'}"]
    cmd = [sys.executable, "-m", "xraymunit", "evaluate", "--cohort", str(study / "cohort"),
           "--config", "configs/evaluate_cpu.yaml", "--set", "real_abnormal_subset=shared",
           "--real-abnormal", ",".join(args.levels), *synthetic, "--out", str(out / "report"), "--no-progress"]
    print(" ".join(cmd))
    return subprocess.call(cmd)


if __name__ == "__main__":
    raise SystemExit(main())
