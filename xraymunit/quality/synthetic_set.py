"""Applies the quality metrics to one synthetic set: picks the images, computes features,
pairs them up, and puts every number next to its real-image yardstick."""

from __future__ import annotations


import numpy as np
import pandas as pd
import torch

from xraymunit.config.evaluate import QualityConfig
from xraymunit.evaluation.classifier import Classifier, embed
from xraymunit.evaluation.datasets import ImageSet, resize, synthetic_images
from xraymunit.io.cohort import Cohort, SyntheticSet
from xraymunit.quality import image_metrics as Q


def pick_rows(rows: pd.DataFrame, cfg: QualityConfig, seed: int) -> pd.DataFrame:
    """Up to max_sources source images (random, seeded) with their styles, max_images in all."""
    sources = np.array(sorted(rows["source_image_key"].unique()))
    rng = np.random.default_rng([seed, 0x9A])
    chosen = sources[np.sort(rng.permutation(len(sources))[: cfg.max_sources])]
    sub = rows[rows["source_image_key"].isin(set(chosen))]
    sub = sub.sort_values(["source_image_key", "style_index", "synth_key"]).reset_index(drop=True)
    if len(sub) > cfg.max_images:  # keep the first styles of every source rather than whole sources
        rank = sub.groupby("source_image_key").cumcount()
        sub = sub.assign(_r=rank).sort_values(["_r", "source_image_key"]).head(cfg.max_images)
        sub = sub.drop(columns="_r").sort_values(["source_image_key", "style_index"]).reset_index(drop=True)
    return sub


def _maps_distance(maps, a: torch.Tensor, b: torch.Tensor, batch: int = 32) -> np.ndarray:
    """LPIPS-style distance of each pair (a[i], b[i]); `maps` gives a batch's feature maps."""
    out = []
    with torch.no_grad():
        for i in range(0, len(a), batch):
            out.append(Q.lpips_style(maps(a[i:i + batch]), maps(b[i:i + batch])))
    return np.concatenate(out) if out else np.zeros(0)


def _inputs(cohort: Cohort, synth: SyntheticSet, rows: pd.DataFrame, size: int):
    """The picked rows' source images (one per source), each row's source index, its patients, and the
    synthetic images, all at `size`."""
    ok = cohort.ok().set_index("image_key")
    src_keys = rows["source_image_key"].to_numpy()
    uniq = np.array(sorted(set(src_keys)))
    src_imgs = resize(cohort.stack(ok.loc[uniq, "cache_index"].to_numpy()), size)
    src_patients = ok.loc[uniq, "patient_key"].to_numpy(dtype=object)
    src_index = {k: i for i, k in enumerate(uniq)}
    sidx = np.array([src_index[k] for k in src_keys], np.int64)
    return ok, uniq, src_imgs, src_patients, sidx, synthetic_images(synth, rows, size)


def assess(
    model: Classifier,
    cohort: Cohort,
    synth: SyntheticSet,
    rows: pd.DataFrame,
    ref_normal: ImageSet,
    ref_abnormal: ImageSet,
    train: ImageSet,
    cfg: QualityConfig,
    size: int,
    device,
    seed: int = 0,
    bar=None,
) -> tuple[dict, dict]:
    """All quality numbers (JSON-ready) and the images of the style grid.

    Args:
        model: the feature network (a cohort-trained classifier, eval mode).
        rows: synthetic manifest rows whose source image is in the cohort (any split).
        ref_normal, ref_abnormal: real images of the reference splits (unseen by the feature net).
        train: real training images (memorisation search space).
        bar: a progress bar advanced once per phase (5 phases), or None.
    """
    tick = (lambda: bar.update(1)) if bar is not None else (lambda: None)
    rows = pick_rows(rows, cfg, seed)
    ok, uniq, src_imgs, src_patients, sidx, syn = _inputs(cohort, synth, rows, size)
    model.eval()

    feats = [embed(model, x, device) for x in (syn.images, src_imgs, ref_normal.images, ref_abnormal.images)]
    tick()
    realism = _realism(*feats, cfg, seed)
    tick()
    diversity = _diversity(lambda x: model.feature_maps(x.to(device)), syn.images, sidx, ref_abnormal, cfg, size,
                           seed)
    tick()
    content = _content(src_imgs, syn.images, sidx, src_patients, cfg, size, seed)
    tick()
    mem = Q.memorisation(
        Q.pixel_vectors(syn.images, cfg.memorisation_size), src_patients[sidx],  # resolved via the cohort
        Q.pixel_vectors(train.images, cfg.memorisation_size), train.patients,
        synth_keys=syn.keys, train_keys=train.keys,
    )
    tick()
    result = {
        "n_synthetic": int(len(syn)), "n_inputs": int(len(uniq)), "image_size": int(size),
        "reference": {"n_real_normal": int(len(ref_normal)), "n_real_abnormal": int(len(ref_abnormal))},
        "realism": realism,
        "diversity": diversity,
        "content_preservation": content,
        "memorisation": mem,
    }
    grid = _grid(cohort, synth, ok, uniq, rows, sidx, cfg)
    return result, grid


def _realism(f_syn, f_src, f_nor, f_abn, cfg: QualityConfig, seed: int) -> dict:
    """Fréchet distance and KID in the feature space, each next to its real-image yardstick."""
    kid = dict(subset_size=cfg.kid_subset_size, subsets=cfg.kid_subsets, seed=seed)

    def dist(a, b, what):
        return {"compares": what, "n": [int(len(a)), int(len(b))],
                **Q.frechet_with_ci(a, b, cfg.fd_bootstrap, seed=seed), **Q.kernel_distance_summary(a, b, **kid)}

    return {
        "feature_dim": int(f_syn.shape[1]) if f_syn.ndim == 2 and f_syn.size else 0,
        "synthetic_vs_real_abnormal": dist(f_syn, f_abn, "synthetic abnormal vs real abnormal (lower = more realistic)"),
        "yardstick_real_normal_vs_real_abnormal": dist(f_nor, f_abn, "real normal vs real abnormal (the gap a translation must close)"),
        "inputs_vs_real_abnormal": dist(f_src, f_abn, "the normal inputs of the synthetic images vs real abnormal (before translation)"),
        "synthetic_vs_real_normal": dist(f_syn, f_nor, "synthetic abnormal vs real normal"),
    }


def assess_features(net, cohort: Cohort, synth: SyntheticSet, rows: pd.DataFrame, ref_normal: ImageSet,
                    ref_abnormal: ImageSet, cfg: QualityConfig, seed: int = 0) -> dict:
    """Realism (FD, KID) and LPIPS-style diversity of the images `assess` picks, in another feature space.

    Args:
        net: a network with `image_size`, `embed(images)` and `feature_maps(images)` on [0, 1] images
            (the pretrained backbone, quality/backbone.py).
        ref_normal, ref_abnormal: the reference real images at net.image_size.
    """
    rows = pick_rows(rows, cfg, seed)
    _, uniq, src_imgs, _, sidx, syn = _inputs(cohort, synth, rows, net.image_size)
    feats = [net.embed(x) for x in (syn.images, src_imgs, ref_normal.images, ref_abnormal.images)]
    diversity = _diversity(net.feature_maps, syn.images, sidx, ref_abnormal, cfg, net.image_size, seed,
                           ms_ssim=False)
    return {"n_synthetic": int(len(syn)), "n_inputs": int(len(uniq)), "image_size": int(net.image_size),
            "realism": _realism(*feats, cfg, seed), "diversity": diversity}


def _diversity(maps, syn_images: torch.Tensor, sidx: np.ndarray, ref_abnormal: ImageSet,
               cfg: QualityConfig, size: int, seed: int, ms_ssim: bool = True) -> dict:
    """All pairs of styles of one input, vs pairs of unrelated real abnormal images (`maps`: a batch's
    feature maps for the LPIPS-style distance; 1 − MS-SSIM too unless ms_ssim is False)."""
    pairs = Q.pairs_within_groups(sidx, cfg.max_images, seed, 0x9C)  # 20 styles → 190 pairs per input: a subset
    real_pairs = Q.distinct_patient_pairs(ref_abnormal.patients, max(len(pairs), 50), seed, 0x9B)
    k_ms = (cfg.ms_ssim_kernel, cfg.ms_ssim_scales)
    kernel, weights = Q.ms_ssim_setup(size, *k_ms)

    def measure(images, pr, groups, batch: int = 64):
        names = ("lpips_style", "one_minus_ms_ssim") if ms_ssim else ("lpips_style",)
        if len(pr) == 0:
            return {name: Q.mean_sd([]) for name in names}
        lp, ms = [], []
        for i in range(0, len(pr), batch):  # pairs in batches: bounded memory at 224 px
            a = images[torch.as_tensor(pr[i:i + batch, 0])]
            b = images[torch.as_tensor(pr[i:i + batch, 1])]
            lp.append(_maps_distance(maps, a, b, batch))
            if ms_ssim:
                ms.append(1.0 - Q.ms_ssim(a, b, *k_ms))
        boot = dict(groups=groups, n_boot=cfg.bootstrap, seed=seed)
        result = {"lpips_style": Q.mean_sd(np.concatenate(lp), **boot)}
        if ms_ssim:
            result["one_minus_ms_ssim"] = Q.mean_sd(np.concatenate(ms), **boot)
        return result

    div_syn = measure(syn_images, pairs, sidx[pairs[:, 0]] if len(pairs) else None)  # resample inputs
    div_real = measure(ref_abnormal.images, real_pairs, None)
    div_syn["n_inputs"] = int(len(np.unique(sidx)))
    result = {"synthetic_styles_of_same_input": div_syn, "yardstick_real_abnormal_pairs": div_real}
    return result | ({"ms_ssim_kernel": kernel, "ms_ssim_scales": len(weights)} if ms_ssim else {})


def _content(src_imgs: torch.Tensor, syn_images: torch.Tensor, sidx: np.ndarray, src_patients: np.ndarray,
             cfg: QualityConfig, size: int, seed: int) -> dict:
    """Content preservation: SSIM of each input and its translations after a low-pass, vs two patients."""
    sigma = cfg.lowpass_sigma * size
    lp_src, lp_syn = Q.lowpass(src_imgs, sigma), Q.lowpass(syn_images, sigma)
    ssim_kept = Q.ssim(lp_src[torch.as_tensor(sidx)], lp_syn, cfg.ssim_window) if len(sidx) else np.zeros(0)
    unrel = Q.distinct_patient_pairs(src_patients, 200, seed, 0x9B)
    ssim_unrel = (Q.ssim(lp_src[torch.as_tensor(unrel[:, 0])], lp_src[torch.as_tensor(unrel[:, 1])], cfg.ssim_window)
                  if len(unrel) else np.zeros(0))
    return {
        "lowpass_sigma_px": float(sigma),
        "ssim_input_vs_translation": Q.mean_sd(ssim_kept, groups=sidx, n_boot=cfg.bootstrap, seed=seed),
        "yardstick_ssim_unrelated_inputs": Q.mean_sd(ssim_unrel, n_boot=cfg.bootstrap, seed=seed),
        "note": "1 = anatomy identical after low-pass; the yardstick is two different patients",
    }


def _grid(cohort: Cohort, synth: SyntheticSet, ok: pd.DataFrame, uniq, rows: pd.DataFrame, sidx,
          cfg: QualityConfig) -> dict:
    """Inputs and their first styles at their stored resolution (not the classifier's)."""
    groups = [g for g in np.unique(sidx)][: cfg.grid_sources]
    inputs = [cohort.image(ok.loc[uniq[g], "cache_index"]) for g in groups]
    picked = [np.flatnonzero(sidx == g)[: cfg.grid_styles] for g in groups]
    return {
        "inputs": inputs,
        "styles": [[synth.image(rows.iloc[i]) for i in idx] for idx in picked],
        "change_maps": [[synth.change_map(rows.iloc[i], src) for i in idx] for idx, src in zip(picked, inputs)],
    }
