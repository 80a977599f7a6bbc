"""Issue-12 study: is a translation "judged abnormal" for more than its intensities?

The NIH part carries an intensity shortcut (abnormal images are darker; a 16-bin histogram
alone separates the domains), and the judge that scores the translations may use it. This
control gives the same source normals the intensities of real abnormals and nothing else —
scikit-image's histogram matching of each source to a real abnormal picked at random from the
generator's K training abnormals, one reference per style — and scores them with the same
judge, next to the generator's translations of the same sources:

- judged abnormal (share over the judge's val-chosen threshold),
- Fréchet distance to the real val abnormals in the judge's features,
- median intensity, and low-pass SSIM to the source (content kept).

If histogram matching is judged abnormal as often as the translations, the judge's "translation
success" says little beyond intensity. Writes one JSON (and a small grid PNG: source,
translation, histogram-matched):

    python pipelines/cxr_study/intensity_control.py --synth runs/cxr_study/nih_per_level/synth_25 \
        --train-run runs/cxr_study/nih_per_level/train_25 --out results/cxr_nih_lowdata/intensity_control.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from skimage.exposure import match_histograms

from xraymunit import config as C
from xraymunit.config.train import TrainConfig
from xraymunit.io.cohort import Cohort
from xraymunit.quality import image_metrics as Q
from xraymunit.quality import judge as J

SIZE = 128  # the generators' side


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        a = np.asarray(im)
    return a.astype(np.float32) / (65535.0 if a.dtype == np.uint16 else 255.0)


def _stack(cohort: Cohort, rows: pd.DataFrame) -> torch.Tensor:
    return cohort.tensor(rows["cache_index"].to_numpy(), SIZE)


def _describe(judge: J.Judge, x: torch.Tensor, ref_features: np.ndarray, sources: torch.Tensor | None) -> dict:
    s = judge.scores(x)
    out = {"n": len(x), "judged_abnormal": float(np.mean(s > judge.threshold)),
           "mean_abnormal_probability": float(np.mean(s)),
           "fd_to_val_abnormal": Q.frechet_distance(judge.embed(x), ref_features),
           "median_intensity": float(x.median())}
    if sources is not None:
        sigma = 0.05 * SIZE
        out["content_ssim_to_source"] = float(np.mean(Q.ssim(Q.lowpass(x, sigma), Q.lowpass(sources, sigma))))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synth", required=True, help="a synthesize output folder (a2b, random styles)")
    p.add_argument("--train-run", required=True, help="the training run behind it (config.yaml: cohort keys, judge)")
    p.add_argument("--cohort", default=None, help="default: the pipeline's cohort next to the run")
    p.add_argument("--sources", type=int, default=120, help="source normals used (seeded pick)")
    p.add_argument("--out", required=True, help="JSON to write (a PNG grid is written next to it)")
    args = p.parse_args(argv)
    run, synth, out = Path(args.train_run), Path(args.synth), Path(args.out)
    cfg = C.load(TrainConfig, run / "config.yaml")
    cohort = Cohort.open(args.cohort or run.parent / "cohort")
    judge = J.load_or_train(cohort, cfg.quality.judge)
    rng = np.random.default_rng(0)

    manifest = pd.read_parquet(synth / "manifest.parquet")
    sources = sorted(manifest["source_image_key"].unique())
    sources = sorted(rng.choice(sources, size=min(args.sources, len(sources)), replace=False))
    manifest = manifest[manifest["source_image_key"].isin(sources)].sort_values(["source_image_key", "style_index"])
    n_styles = int(manifest.groupby("source_image_key").size().min())
    manifest = manifest[manifest["style_index"] < n_styles]

    m = cohort.ok().set_index("image_key")
    src = _stack(cohort, m.loc[sources].reset_index())
    keys_b = cfg.data.domain_b_keys or list(cohort.select(split="train", label=cfg.data.domain_b)["image_key"])
    refs = _stack(cohort, m.loc[sorted(keys_b)].reset_index())
    val_b = _stack(cohort, cohort.select(split="val", label=cfg.data.domain_b).sort_values("image_key"))
    val_a = _stack(cohort, cohort.select(split="val", label=cfg.data.domain_a).sort_values("image_key"))
    ref_features = judge.embed(val_b)

    translations = torch.stack([torch.from_numpy(_png(synth / r)) for r in manifest["png_path"]])[:, None]
    if translations.shape[-1] != SIZE:
        translations = torch.nn.functional.interpolate(translations, size=(SIZE, SIZE), mode="area")
    source_of = torch.repeat_interleave(src, n_styles, dim=0)
    pick = rng.integers(0, len(refs), size=len(source_of))  # one real abnormal reference per "style"
    matched = torch.stack([torch.from_numpy(match_histograms(source_of[i, 0].numpy(), refs[j, 0].numpy()))
                           for i, j in enumerate(pick)])[:, None].float().clamp(0, 1)

    result = {
        "synth": str(synth), "train_run": str(run), "checkpoint_step": int(manifest["checkpoint_step"].iloc[0]),
        "n_sources": len(sources), "styles_per_source": n_styles, "n_references": len(refs),
        "judge": {"val_auroc": judge.info["val_auroc"], "test_auroc": judge.info["test_auroc"],
                  "threshold": judge.threshold},
        "sets": {
            "real_val_normal": _describe(judge, val_a, ref_features, None),
            "real_val_abnormal": _describe(judge, val_b, ref_features, None),
            "sources_untranslated": _describe(judge, src, ref_features, src),
            "translations": _describe(judge, translations, ref_features, source_of),
            "histogram_matched_sources": _describe(judge, matched, ref_features, source_of),
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    rows = [torch.cat([src[i, 0], translations[i * n_styles, 0], matched[i * n_styles, 0]], dim=1) for i in range(4)]
    grid = (torch.cat(rows, dim=0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(grid).save(out.with_suffix(".png"))
    for name, s in result["sets"].items():
        print(f"{name:28s} judged abnormal {s['judged_abnormal']:.2f}  FD {s['fd_to_val_abnormal']:.2f}  "
              f"median {s['median_intensity']:.3f}  content {s.get('content_ssim_to_source', float('nan')):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
