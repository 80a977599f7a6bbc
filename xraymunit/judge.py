"""The judge: one normal-vs-abnormal classifier per cohort, the measuring instrument of quality.

Trained once on the cohort's **real train split** only, selected on val AUROC, its own
val/test AUROC recorded with patient-level bootstrap CIs. Training-time monitoring,
`evaluate`'s quality metrics and the notebooks all ask it the same questions (is this image
judged abnormal? how far are these images from real ones in its features?) instead of each
training their own network. A weak judge makes every judged number weak, so its AUROC
travels with everything it produces.

Judges live in `COHORT/judge/<fingerprint>/` (judge.pt + judge.json); the fingerprint covers
the cohort's splits, labels and cache and the judge's settings, so a judge is rebuilt only
when one of those changes, and judges with different settings coexist. A read-only cohort
keeps its judge in the calling run's folder instead (RUN/judge/<fingerprint>/, with a warning).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from xraymunit import __version__, config
from xraymunit.config.evaluate import JudgeConfig
from xraymunit.errors import XraymunitError
from xraymunit.evaluation import metrics as M
from xraymunit.evaluation.classifier import Classifier, TrainPool, build_classifier, predict, train_classifier
from xraymunit.evaluation.datasets import ImageSet, real_split
from xraymunit.io import atomic
from xraymunit.io.cohort import Cohort

log = logging.getLogger(__name__)

WEAK_JUDGE_AUROC = 0.7
"""Below this val AUROC every judged number is flagged: the judge barely tells the domains apart."""

FORMAT = "xraymunit.judge"
FORMAT_VERSION = 1
JUDGE_DIR = "judge"


class JudgeError(XraymunitError):
    """No judge can be trained on this cohort (e.g. a split lacks a class) or a judge file is broken."""


@dataclass
class Judge:
    """A trained judge in eval mode: scores, features and the val-chosen operating threshold."""

    model: Classifier
    threshold: float
    info: dict
    device: torch.device

    @property
    def image_size(self) -> int:
        return int(self.info["config"]["classifier"]["image_size"])

    @property
    def val_auroc(self) -> float:
        return float(self.info["val_auroc"]["value"])

    @property
    def weak(self) -> bool:
        return not self.val_auroc >= WEAK_JUDGE_AUROC

    def describe(self) -> str:
        """One line to print next to every number the judge produces."""
        v, t = self.info["val_auroc"], self.info["test_auroc"]
        return (f"judge val AUROC {_fmt(v)}, test AUROC {_fmt(t)} "
                f"({self.info['n_train']['abnormal']} abnormal / {self.info['n_train']['normal']} normal train images)"
                + (f" — WEAK JUDGE (val AUROC < {WEAK_JUDGE_AUROC}): judged numbers are unreliable" if self.weak else ""))

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """(n, 1, s, s) images in [0, 1] (any side) → the judge's input size, float32."""
        x = images.float()
        if x.shape[-1] != self.image_size:
            mode = "area" if x.shape[-1] > self.image_size else "bilinear"
            kw = {} if mode == "area" else {"align_corners": False}
            x = torch.nn.functional.interpolate(x, size=(self.image_size,) * 2, mode=mode, **kw).clamp_(0, 1)
        return x

    def scores(self, images: torch.Tensor) -> np.ndarray:
        """Probability of abnormal per image."""
        return predict(self.model, self.prepare(images), self.device)

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch: int = 64) -> np.ndarray:
        """Penultimate features (the Fréchet/KID space)."""
        x = self.prepare(images)
        out = [self.model.embed(x[i:i + batch].to(self.device)).double().cpu() for i in range(0, len(x), batch)]
        return torch.cat(out).numpy() if out else np.zeros((0, 0))

    @torch.no_grad()
    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Stem and dense-block outputs (the LPIPS-style space)."""
        return self.model.feature_maps(self.prepare(images).to(self.device))


def _fmt(d: dict) -> str:
    if d.get("value") is None:
        return "n/a"
    lo, hi = d.get("ci_low"), d.get("ci_high")
    ci = f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
    return f"{d['value']:.3f}{ci}"


# --------------------------------------------------------------------------- data and fingerprint


def _split(cohort: Cohort, split: str, cfg: JudgeConfig) -> ImageSet:
    s = real_split(cohort, split, cfg.classifier.image_size, cfg.normal_label, cfg.abnormal_label)
    if cfg.source_datasets:
        s = s.subset(np.flatnonzero(np.isin(s.sources.astype(str), list(cfg.source_datasets))))
    return s


def fingerprint(cohort: Cohort, cfg: JudgeConfig) -> str:
    """What determines a judge: its settings, and the key, label and split of every image it may use."""
    rows = cohort.ok()
    rows = rows[rows["label"].isin([cfg.normal_label, cfg.abnormal_label])]
    listing = sorted(zip(rows["image_key"].astype(str), rows["label"].astype(str), rows["split"].astype(str)))
    try:
        st = (cohort.root / "cache" / "images.npy").stat()
        stamp = [st.st_size, st.st_mtime_ns]
    except OSError:
        stamp = []
    blob = json.dumps({"config": config.to_dict(cfg), "images": listing, "cache": stamp}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def judge_folder(cohort: Cohort, cfg: JudgeConfig, root: str | Path | None = None) -> Path:
    return Path(root or cohort.root / JUDGE_DIR) / fingerprint(cohort, cfg)


# --------------------------------------------------------------------------- train, save, load


def load_or_train(cohort: str | Path | Cohort, cfg: JudgeConfig | None = None, *, root: str | Path | None = None,
                  fallback: str | Path | None = None, look_in: Sequence[str | Path] = (),
                  device: str | torch.device = "cpu", progress: bool = False) -> Judge:
    """The cohort's judge for these settings: loaded if one was trained already, else trained now.

    Args:
        cohort: an ingested cohort (folder or opened).
        cfg: judge settings (JudgeConfig defaults: small DenseNet, 64 px, 600 steps).
        root: where judges are kept (default COHORT/judge/).
        fallback: where to keep the judge when `root` cannot be written (a read-only cohort): the
            calling run's own folder (RUN/judge/); None: `root` must be writable.
        look_in: further judge roots a judge may be reused from (e.g. the training run's fallback).
        device: where the judge runs.
        progress: a tqdm bar while training.
    """
    cfg = cfg or JudgeConfig()
    cfg.validate()
    co = cohort if isinstance(cohort, Cohort) else Cohort.open(cohort)
    folder = judge_folder(co, cfg, root)
    device = torch.device(device)
    for candidate in [folder] + [judge_folder(co, cfg, r) for r in (fallback, *look_in) if r is not None]:
        if (candidate / "judge.pt").is_file():
            try:
                judge = load(candidate, device)
                log.info("judge reused from %s — %s", candidate, judge.describe())
                return judge
            except JudgeError as exc:
                log.warning("%s; training the judge again", exc)
    if fallback is not None and not writable(folder):
        kept = judge_folder(co, cfg, fallback)
        log.warning("cannot write the cohort's judge folder %s (a read-only cohort?): the judge is kept in %s "
                    "instead, for this run only; make the cohort writable to share one judge between runs",
                    folder, kept)
        folder = kept
    return train(co, cfg, folder, device, progress)


def writable(folder: Path) -> bool:
    """Whether a judge can be saved in `folder` (created here if missing). False for a cohort without
    write permission or on a read-only mount, or whose `judge` is not a folder."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def train(cohort: Cohort, cfg: JudgeConfig, folder: Path, device: torch.device, progress: bool = False) -> Judge:
    """Train on real train images, select on val AUROC, score val and test, save into `folder`."""
    from tqdm.auto import tqdm

    t0 = time.time()
    sets = {s: _split(cohort, s, cfg) for s in ("train", "val", "test")}
    train_set, val, test = sets["train"], sets["val"], sets["test"]
    for name in ("train", "val"):
        n_abn = int(sets[name].labels.sum())
        if n_abn == 0 or n_abn == len(sets[name]):
            raise JudgeError(f"cannot train a judge: the {name} split has {len(sets[name]) - n_abn} "
                             f"'{cfg.normal_label}' and {n_abn} '{cfg.abnormal_label}' images (both are needed)")
    pool = TrainPool(normal=train_set.images[torch.as_tensor(train_set.where(0))],
                     abnormal=train_set.images[torch.as_tensor(train_set.where(1))],
                     balanced=cfg.classifier.balanced_batches)
    with tqdm(total=cfg.classifier.steps, desc="judge", unit="step", disable=not progress) as bar:
        res = train_classifier(pool, val, cfg.classifier, cfg.seed, device, progress=bar)
    v_scores = predict(res.model, val.images, device)
    threshold = M.youden_threshold(val.labels, v_scores)
    info = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "xraymunit": __version__,
        "fingerprint": folder.name, "config": config.to_dict(cfg),
        "n_train": {"normal": int((train_set.labels == 0).sum()), "abnormal": int(train_set.labels.sum())},
        "n_val": {"normal": int((val.labels == 0).sum()), "abnormal": int(val.labels.sum())},
        "n_test": {"normal": int((test.labels == 0).sum()), "abnormal": int(test.labels.sum())},
        "best_step": res.best_step, "threshold": float(threshold), "threshold_rule": "Youden's J on val",
        "val_auroc": _auroc_ci(val, v_scores, cfg),
        "test_auroc": _auroc_ci(test, predict(res.model, test.images, device), cfg)
        if 0 < test.labels.sum() < len(test) else {"value": None, "note": "the test split lacks a class"},
        "history": res.history, "seconds": round(time.time() - t0, 1),
        "note": "trained on the real train split only; a measuring instrument, never a training input of "
                "the classifier arms (in a low-data study it has seen every train abnormal image)",
    }
    info["weak"] = not (info["val_auroc"]["value"] or 0) >= WEAK_JUDGE_AUROC
    save(folder, res.model, threshold, info)
    judge = Judge(res.model.eval(), float(threshold), info, device)
    log.info("judge trained in %.0f s → %s — %s", info["seconds"], folder, judge.describe())
    if judge.weak:
        log.warning("the judge is weak (val AUROC %.3f < %.1f): every judged quality number is unreliable",
                    judge.val_auroc, WEAK_JUDGE_AUROC)
    return judge


def _auroc_ci(s: ImageSet, scores: np.ndarray, cfg: JudgeConfig) -> dict:
    W = M.bootstrap_weights(s.labels, s.patients, cfg.bootstrap, cfg.seed)
    point = float(M.auroc(s.labels, scores))
    boot = M.auroc_weighted(s.labels, scores, W) if len(W) else np.zeros(0)
    boot = boot[np.isfinite(boot)]
    a = (1 - cfg.ci) / 2
    lo, hi = (float(np.quantile(boot, a)), float(np.quantile(boot, 1 - a))) if boot.size else (None, None)
    return {"value": point, "ci_low": lo, "ci_high": hi, "ci_level": cfg.ci, "bootstrap_unit": "patient",
            "n_boot": int(boot.size)}


def save(folder: Path, model: Classifier, threshold: float, info: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, "threshold": float(threshold),
             "config": info["config"], "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    with atomic.atomic_path(folder / "judge.pt") as tmp:
        torch.save(state, tmp)
    with atomic.atomic_path(folder / "judge.json") as tmp:
        Path(tmp).write_text(json.dumps(info, indent=1))


def load(folder: str | Path, device: str | torch.device = "cpu") -> Judge:
    """A judge saved by `train` (weights-only load; the settings rebuild the network)."""
    folder, device = Path(folder), torch.device(device)
    try:
        state = torch.load(folder / "judge.pt", map_location="cpu", weights_only=True)
        info = json.loads((folder / "judge.json").read_text())
        if state.get("format") != FORMAT or state.get("format_version") != FORMAT_VERSION:
            raise ValueError("not a judge file of this version")
        cfg = config.from_dict(JudgeConfig, state["config"])
        model = build_classifier(cfg.classifier, cfg.seed)
        model.load_state_dict(state["state_dict"])
    except Exception as exc:  # noqa: BLE001 - unreadable, truncated, other version, mismatched weights
        raise JudgeError(f"the judge in {folder} cannot be loaded ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return Judge(model.to(device).eval().requires_grad_(False), float(state["threshold"]), info, device)
