"""Tiny cohort and synthetic folders, written exactly per xraymunit/FORMATS.md, for evaluate tests.

The ingest and synthesize writers are built elsewhere; these folders let the evaluation
be tested (and benchmarked) without them. Images are procedural "radiograph-like"
phantoms (body, dark lung fields, bright mediastinum, ribs); abnormal ones carry bright
blobs in the lung fields, a signal a small classifier can learn in a few dozen steps.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def _key(*parts) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def _ellipse(yy, xx, cy, cx, ry, rx):
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def anatomy(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    """A normal phantom in [0, 1] (bright = dense) and the lung geometry for placing lesions."""
    y = np.linspace(-1, 1, size, dtype=np.float32)
    yy, xx = np.meshgrid(y, y, indexing="ij")
    dy, dx = rng.normal(0, 0.03, 2)
    s = rng.uniform(0.92, 1.05)
    yy, xx = (yy - dy) / s, (xx - dx) / s
    img = np.full((size, size), 0.05, np.float32)
    img[_ellipse(yy, xx, 0.05, 0.0, 0.95, 0.85)] = 0.55
    lungs = []
    for side in (-1, 1):
        geom = dict(cy=-0.05 + rng.normal(0, 0.02), cx=side * 0.4, ry=0.62, rx=0.28)
        lungs.append(geom)
        mask = _ellipse(yy, xx, geom["cy"], geom["cx"], geom["ry"], geom["rx"])
        ribs = 0.07 * (np.sin(yy * 20 + rng.uniform(0, 6.3)) > 0.55)
        img[mask] = 0.18 + ribs[mask]
    img[(np.abs(xx) < 0.11) & (yy > -0.75)] = 0.78
    img = img * rng.uniform(0.9, 1.1)
    return img, {"lungs": lungs, "yy": yy, "xx": xx}


def add_lesions(img: np.ndarray, geom: dict, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    """Bright gaussian opacities inside the lung fields (the learnable abnormal signal)."""
    out = img.copy()
    yy, xx = geom["yy"], geom["xx"]
    for _ in range(n if n is not None else int(rng.integers(1, 3))):
        lung = geom["lungs"][int(rng.integers(0, 2))]
        cy = lung["cy"] + rng.uniform(-0.5, 0.5) * lung["ry"]
        cx = lung["cx"] + rng.uniform(-0.45, 0.45) * lung["rx"]
        sigma = rng.uniform(0.10, 0.16)
        out += rng.uniform(0.30, 0.45) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    return out


def finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = img + rng.normal(0, 0.02, img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


def write_cohort(
    root: str | Path,
    n_patients: int = 48,
    size: int = 64,
    seed: int = 0,
    abnormal_fraction: float = 0.5,
    sources: tuple[str, ...] = ("site_a", "site_b"),
    second_image_every: int = 6,
    split_fractions: tuple[float, float] = (0.6, 0.2),
) -> Path:
    """A cohort folder: manifest.parquet + cache/images.npy + cache/meta.json (+ 2 non-ok rows).

    Every `second_image_every`-th patient has two images, so patient-level logic is exercised.
    Splits are patient-level, stratified by label (train / val / test by split_fractions).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    (root / "cache").mkdir(parents=True, exist_ok=True)
    labels = np.array(["abnormal"] * int(round(n_patients * abnormal_fraction))
                      + ["normal"] * (n_patients - int(round(n_patients * abnormal_fraction))))
    rng.shuffle(labels)
    split_of = {}
    for lab in ("normal", "abnormal"):
        idx = np.flatnonzero(labels == lab)
        n_tr = int(round(len(idx) * split_fractions[0]))
        n_va = int(round(len(idx) * split_fractions[1]))
        for j, i in enumerate(idx):
            split_of[i] = "train" if j < n_tr else "val" if j < n_tr + n_va else "test"
    rows, images = [], []
    for p in range(n_patients):
        n_img = 2 if second_image_every and p % second_image_every == 0 else 1
        for k in range(n_img):
            base, geom = anatomy(rng, size)
            img = add_lesions(base, geom, rng) if labels[p] == "abnormal" else base
            images.append(np.round(finish(img, rng) * 65535).astype(np.uint16))
            rows.append(_row(p, k, labels[p], sources[p % len(sources)], split_of[p], len(images) - 1, size))
    for j, (status, reason) in enumerate([("skipped", "modality SR is not an image"),
                                          ("failed", "pixel data could not be decoded")]):
        row = _row(10_000 + j, 0, None, sources[0], None, -1, size)
        row.update(status=status, reason=reason)
        rows.append(row)
    np.save(root / "cache" / "images.npy", np.stack(images))
    (root / "cache" / "meta.json").write_text(json.dumps(
        {"size": size, "count": len(images), "dtype": "uint16", "fit": "pad", "intensity": "display"}))
    pd.DataFrame(rows).to_parquet(root / "manifest.parquet", index=False)
    (root / "ingest_report.json").write_text(json.dumps({"counts": {"ok": len(images)}}))
    return root


def _row(p, k, label, source, split, cache_index, size) -> dict:
    return {
        "image_key": _key("img", p, k), "patient_key": _key("pat", p),
        "study_key": _key("study", p, k), "series_key": _key("series", p, k), "sop_key": _key("sop", p, k),
        "source_format": "png", "modality": None, "sex": "F" if p % 2 else "M", "age": float(30 + p % 50),
        "view_position": "PA", "body_part": "CHEST", "manufacturer": None, "photometric": None,
        "bits_stored": 8, "transfer_syntax": None, "rows": size, "columns": size,
        "spacing_row_mm": None, "spacing_col_mm": None, "spacing_source": None,
        "window_source": "percentile", "label": label, "label_source": "csv:path" if label else None,
        "source_dataset": source, "split": split, "cache_index": int(cache_index),
        "status": "ok", "reason": None,
    }


def write_synthetic(
    root: str | Path,
    cohort_root: str | Path,
    n_styles: int = 3,
    seed: int = 1,
    size: int | None = None,
    unknown_sources: int = 1,
    copies_of_training: int = 0,
) -> Path:
    """A synthesize-format folder: normal→abnormal translations of every normal cohort image.

    Translations of val/test sources are included on purpose (evaluate must exclude them from
    training), plus `unknown_sources` rows whose source is not in the cohort, plus
    `copies_of_training` rows that are verbatim copies of a train abnormal image of *another*
    patient (attributed to a train normal source): what the memorisation check must flag.
    """
    root, cohort_root = Path(root), Path(cohort_root)
    rng = np.random.default_rng(seed)
    manifest = pd.read_parquet(cohort_root / "manifest.parquet")
    cache = np.load(cohort_root / "cache" / "images.npy", mmap_mode="r")
    ok = manifest[(manifest["status"] == "ok") & (manifest["label"] == "normal")]
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    sources = [(r.image_key, r.patient_key, r.split, cache[r.cache_index].astype(np.float32) / 65535)
               for r in ok.itertuples()]
    for u in range(unknown_sources):
        img, _ = anatomy(rng, cache.shape[-1])
        sources.append((_key("unknown-img", u), _key("unknown-pat", u), "train", img))
    for image_key, patient_key, split, src in sources:
        s = src.shape[-1]
        geom = {"lungs": [dict(cy=-0.05, cx=-0.4, ry=0.62, rx=0.28), dict(cy=-0.05, cx=0.4, ry=0.62, rx=0.28)]}
        yy, xx = np.meshgrid(np.linspace(-1, 1, s), np.linspace(-1, 1, s), indexing="ij")
        geom.update(yy=yy, xx=xx)
        for style in range(n_styles):
            out = np.clip(add_lesions(src, geom, rng) + rng.normal(0, 0.01, src.shape), 0, 1)
            if size and size != s:
                out = np.asarray(Image.fromarray(out.astype(np.float32)).resize((size, size), Image.BILINEAR))
            key = _key("synth", image_key, style)
            rel = f"images/{key}.png"
            Image.fromarray(np.round(out * 65535).astype(np.uint16)).save(root / rel)
            rows.append({
                "synth_key": key, "source_image_key": image_key, "source_patient_key": patient_key,
                "split": split, "direction": "a2b", "source_label": "normal", "intended_label": "abnormal",
                "style_mode": "random", "style_index": style, "seed": seed,
                "style": [float(v) for v in rng.normal(size=8)], "checkpoint_sha256": "0" * 64,
                "checkpoint_step": 1000, "png_path": rel, "dicom_path": None, "size": int(size or s),
            })
    train = manifest[(manifest["status"] == "ok") & (manifest["split"] == "train")]
    train_normal, train_abnormal = train[train["label"] == "normal"], train[train["label"] == "abnormal"]
    for c in range(copies_of_training):
        src, copy = train_normal.iloc[c % len(train_normal)], train_abnormal.iloc[c % len(train_abnormal)]
        key = _key("copy", c)
        rel = f"images/{key}.png"
        Image.fromarray(np.asarray(cache[copy.cache_index])).save(root / rel)
        rows.append({**rows[0], "synth_key": key, "source_image_key": src.image_key,
                     "source_patient_key": src.patient_key, "split": "train", "style_index": 100 + c,
                     "png_path": rel, "size": int(cache.shape[-1])})
    pd.DataFrame(rows).to_parquet(root / "manifest.parquet", index=False)
    (root / "synthesis.json").write_text(json.dumps({"n_styles": n_styles, "checkpoint_sha256": "0" * 64}))
    return root
