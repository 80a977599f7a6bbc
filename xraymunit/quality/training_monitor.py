"""Quality tracked during training: does the model carry the finding, is it diverse, realistic,
and does it keep the patient? Measured by the cohort's judge on fixed **val** images.

Every `train.quality_every` steps (and at the end) a fixed, seeded set of val images of
domain A is translated with fixed styles; the judge and a few image measures compare the
translations with real val images. Every number sits next to a yardstick from real images,
so a user sees in `quality.csv` / `quality.png` / TensorBoard when more training stops paying.

The columns and the `score` criterion of `checkpoints/best.pt`: xraymunit/quality/quality_csv.py.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from xraymunit.config.train import TrainConfig
from xraymunit.seeding import stable_seed
from xraymunit.io import atomic, csvfile
from xraymunit.io.cohort import Cohort
from xraymunit.quality import image_metrics as Q
from xraymunit.quality.judge import Judge
from xraymunit.quality.quality_csv import (CHANGE_THRESHOLD, COLUMNS, format_cell, quality_score, read_quality_csv,
                                           save_figure)

log = logging.getLogger(__name__)

def val_rows(cohort: Cohort, cfg: TrainConfig, label: str, split: str = "val"):
    rows = cohort.select(split=split, label=label)
    if cfg.data.source_datasets and "source_dataset" in rows:
        rows = rows[rows["source_dataset"].isin(cfg.data.source_datasets)]
    return rows.sort_values("image_key")


def _pick(rows, n: int, seed: int, what: str):
    rng = np.random.default_rng([seed, stable_seed(0, what) % (2**31)])
    return rows.iloc[np.sort(rng.permutation(len(rows))[:n])]


B2A_STYLES = 2  # b→a is measured by its success share only: two styles per input are enough
PLOT_BUDGET = 50  # redraw quality.png only when the last drawing took < 1/50 of the time since


def change_measures(translations: torch.Tensor, sources: torch.Tensor, mask: torch.Tensor | None) -> dict:
    """How global the change is (columns in quality_csv.COLUMNS): against the model's soft mask m in
    residual_mask mode, against the indicator |translation − input| > CHANGE_THRESHOLD in image mode.

    Area and inside/outside are weighted by the mask (Σ m·change / Σ m), not thresholded at m > 0.5:
    a residual model may change a region by a large Δ under m < 0.5 everywhere (seen in the pilots),
    which a threshold would call "no mask, all change outside". For a 0/1 mask both are the same."""
    change = (translations.float() - sources.float()).abs()
    weight = mask.float() if mask is not None else (change > CHANGE_THRESHOLD).float()
    inside, outside = float(weight.sum()), float((1.0 - weight).sum())
    return {
        "a2b_mask_area": float(weight.mean()),
        "a2b_change_inside": float((weight * change).sum()) / inside if inside > 0 else math.nan,
        "a2b_change_outside": float(((1.0 - weight) * change).sum()) / outside if outside > 0 else math.nan,
        "a2b_change_mean": float(change.mean()),
    }


class QualityMonitor:
    """Fixed val inputs, fixed styles, yardsticks computed once; `measure(gens)` gives one csv row."""

    def __init__(self, cohort: Cohort, cfg: TrainConfig, judge: Judge, device: torch.device, out: Path,
                 start_step: int = 0, amp: torch.dtype | None = None):
        """amp: the training's autocast dtype, used for the translations too (the output layer stays fp32)."""
        q, self.cfg, self.judge, self.device, self.amp = cfg.quality, cfg, judge, device, amp
        self.size, seed = cfg.data.crop_size, cfg.train.seed
        a = val_rows(cohort, cfg, cfg.data.domain_a)
        b = val_rows(cohort, cfg, cfg.data.domain_b)
        if len(a) < 2 or len(b) < 2:
            raise ValueError(f"quality monitoring needs >= 2 val images of each domain (has {len(a)} "
                             f"'{cfg.data.domain_a}', {len(b)} '{cfg.data.domain_b}')")
        a, b = _pick(a, q.n_inputs, seed, "monitor-a"), _pick(b, q.n_reference, seed, "monitor-b")
        self.real_a = cohort.tensor(a["cache_index"].to_numpy(), self.size)
        self.real_b = cohort.tensor(b["cache_index"].to_numpy(), self.size)
        self.patients_a = a["patient_key"].to_numpy(dtype=object)
        self.patients_b = b["patient_key"].to_numpy(dtype=object)
        gen = torch.Generator().manual_seed(stable_seed(seed, "monitor-styles"))
        dim = cfg.model.style_dim
        self.styles_b = torch.randn(len(a), q.n_styles, dim, generator=gen)
        self.styles_a = torch.randn(len(b), q.n_styles, dim, generator=gen)[:, :B2A_STYLES]
        self.groups = np.repeat(np.arange(len(a)), q.n_styles)
        self.style_pairs = Q.pairs_within_groups(self.groups, q.max_pairs, seed, 0x51)
        self.sigma = q.lowpass_sigma * self.size
        self._yardsticks()
        self.csv_path, self.png_path = out / "quality.csv", out / "quality.png"
        self.rows = self._read_rows(start_step)
        self._plot_at, self._plot_cost, self._plotted = -math.inf, 0.0, 0

    # ---- yardsticks from real images (once)
    def _yardsticks(self) -> None:
        j, t = self.judge, self.judge.threshold
        sa, sb = j.scores(self.real_a), j.scores(self.real_b)
        self.fa, self.fb = j.embed(self.real_a), j.embed(self.real_b)
        unrel_b = Q.distinct_patient_pairs(self.patients_b, self.cfg.quality.max_pairs, self.cfg.train.seed, 0x52)
        unrel_a = Q.distinct_patient_pairs(self.patients_a, self.cfg.quality.max_pairs, self.cfg.train.seed, 0x52)
        lp_a = Q.lowpass(self.real_a, self.sigma)
        self.fixed = {
            "judge_val_auroc": j.val_auroc,
            "a2b_success_real_abnormal": float(np.mean(sb > t)), "a2b_success_real_normal": float(np.mean(sa > t)),
            "b2a_success_real_normal": float(np.mean(sa <= t)), "b2a_success_real_abnormal": float(np.mean(sb <= t)),
            "a2b_fd_inputs": Q.frechet_distance(self.fa, self.fb),
            "a2b_kid_inputs": self._kid(self.fa, self.fb),
            "real_b_pairs_lpips": self._lpips(self.real_b, unrel_b),
            "real_b_pairs_ms_ssim": self._one_minus_ms_ssim(self.real_b, unrel_b),
            "content_ssim_unrelated": float(np.mean(Q.ssim(lp_a[unrel_a[:, 0]], lp_a[unrel_a[:, 1]])))
            if len(unrel_a) else math.nan,
        }

    def _kid(self, x: np.ndarray, y: np.ndarray) -> float:
        return Q.kernel_distance(x, y, subset_size=min(100, len(x), len(y)), subsets=20, seed=0)[0]

    def _lpips(self, images: torch.Tensor, pairs: np.ndarray, batch: int = 64) -> float:
        if len(pairs) == 0:
            return math.nan
        out = []
        for i in range(0, len(pairs), batch):
            p = torch.as_tensor(pairs[i:i + batch])
            out.append(Q.lpips_style(self.judge.feature_maps(images[p[:, 0]]), self.judge.feature_maps(images[p[:, 1]])))
        return float(np.concatenate(out).mean())

    def _one_minus_ms_ssim(self, images: torch.Tensor, pairs: np.ndarray) -> float:
        if len(pairs) == 0:
            return math.nan
        p = torch.as_tensor(pairs)
        return float(np.mean(1.0 - Q.ms_ssim(images[p[:, 0]], images[p[:, 1]])))

    # ---- one measurement
    @torch.no_grad()
    def translate(self, gens, x: torch.Tensor, enc, dec, styles: torch.Tensor,
                  batch: int = 16) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Each input with its fixed styles → (n·k, 1, s, s) in [0, 1] (fp32 outputs; under the training's
        autocast, whose output layer runs in fp32), and the masks of a residual_mask model (else None)."""
        out, masks, k = [], [], styles.shape[1]
        autocast = (torch.autocast(self.device.type, dtype=self.amp) if self.amp is not None
                    else contextlib.nullcontext())
        with autocast:
            for i in range(0, len(x), batch):
                y, m = self._translate_batch(x[i:i + batch], enc, dec, styles[i:i + batch], k)
                out.append(y)
                masks.append(m)
        return torch.cat(out), (torch.cat(masks) if masks[0] is not None else None)

    def _translate_batch(self, x: torch.Tensor, enc, dec, styles: torch.Tensor, k: int):
        xi = (x * 2 - 1).to(self.device)
        content, _ = enc.encode(xi)
        y = dec.decode_parts(content.repeat_interleave(k, 0), styles.reshape(-1, styles.shape[-1]).to(self.device),
                             xi.repeat_interleave(k, 0))
        mask = y.mask.float().cpu() if y.mask is not None else None
        return ((y.image.float().cpu() + 1) / 2).clamp(0, 1), mask

    def measure(self, gens, step: int, seconds: float, images_seen: int) -> dict:
        t0 = time.perf_counter()
        was_training = gens.training
        gens.eval()
        try:
            ab, mask_ab = self.translate(gens, self.real_a, gens.gen_a, gens.gen_b, self.styles_b)
            ba, _ = self.translate(gens, self.real_b, gens.gen_b, gens.gen_a, self.styles_a)
        finally:
            gens.train(was_training)
        j, t = self.judge, self.judge.threshold
        f_ab = j.embed(ab)
        src = self.real_a[torch.as_tensor(self.groups)]
        row = {
            "step": step, "seconds": round(seconds, 2), "images_seen": images_seen, **self.fixed,
            "a2b_success": float(np.mean(j.scores(ab) > t)),
            "b2a_success": float(np.mean(j.scores(ba) <= t)),
            "a2b_fd": Q.frechet_distance(f_ab, self.fb),
            "a2b_kid": self._kid(f_ab, self.fb),
            "a2b_diversity_lpips": self._lpips(ab, self.style_pairs),
            "a2b_diversity_ms_ssim": self._one_minus_ms_ssim(ab, self.style_pairs),
            "a2b_content_ssim": float(np.mean(Q.ssim(Q.lowpass(src, self.sigma), Q.lowpass(ab, self.sigma)))),
            **change_measures(ab, src, mask_ab),
        }
        row["score"] = quality_score(row)
        row["monitor_seconds"] = round(time.perf_counter() - t0, 3)
        self.rows.append(row)
        self._write()
        return row

    def finish(self) -> None:
        """Draw quality.png with every row (at the end of training, whatever the throttle skipped)."""
        if self.rows and self._plotted != len(self.rows):
            self._plot()

    def is_best(self, row: dict) -> bool:
        """True when this row beats every earlier one by the configured criterion."""
        by = self.cfg.quality.best_by
        value = {"score": row["score"], "success": row["a2b_success"], "fd": -row["a2b_fd"]}[by]
        earlier = [{"score": r["score"], "success": r["a2b_success"], "fd": -r["a2b_fd"]}[by] for r in self.rows[:-1]]
        return math.isfinite(value) and all(value > e for e in earlier if math.isfinite(e))

    # ---- files
    def _read_rows(self, start_step: int) -> list[dict]:
        """On resume keep the rows up to the checkpoint (the steps after it are re-trained)."""
        if not self.csv_path.is_file() or start_step == 0:
            return []
        return [r for r in read_quality_csv(self.csv_path) if r.get("step", math.inf) <= start_step]

    def _write(self) -> None:
        with atomic.atomic_path(self.csv_path) as tmp, open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
            w.writeheader()
            for r in self.rows:
                w.writerow(csvfile.safe_row({k: format_cell(r.get(k)) for k in COLUMNS}))
        # the figure costs ~1 s, more than a measurement: redrawn only when that is < 2% of the time since
        if time.perf_counter() - self._plot_at >= PLOT_BUDGET * self._plot_cost:
            self._plot()

    def _plot(self) -> None:
        t0 = time.perf_counter()
        save_figure(self.rows, self.png_path)
        self._plot_at, self._plot_cost, self._plotted = time.perf_counter(), time.perf_counter() - t0, len(self.rows)


