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
from xraymunit.evaluation.datasets import ImageSet, real_split, resize_batch
from xraymunit.io import atomic
from xraymunit.io.cohort import Cohort

log = logging.getLogger(__name__)

WEAK_JUDGE_AUROC = 0.7
"""Unless the lower bound of the val AUROC's CI is at least this, every judged number is flagged: the
judge is not shown to tell the domains apart (the rule of the shortcut test: a point estimate of 0.88
on a handful of val patients, CI [0.58, 1.00], proves nothing)."""

# The file format's name (in judge.pt and judge.json), not this module's path: it stayed
# "xraymunit.judge" when the module moved into xraymunit.quality, so judges already on disk still load.
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
        return is_weak(self.info["val_auroc"])

    def describe(self) -> str:
        """One line to print next to every number the judge produces."""
        v, t = self.info["val_auroc"], self.info["test_auroc"]
        return (f"judge val AUROC {_fmt(v)}, test AUROC {_fmt(t)} "
                f"({self.info['n_train']['abnormal']} abnormal / {self.info['n_train']['normal']} normal train images)"
                + (f" — WEAK JUDGE (val AUROC CI lower bound < {WEAK_JUDGE_AUROC}): judged numbers are unreliable"
                   if self.weak else ""))

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """(n, 1, s, s) images in [0, 1] (any side) → the judge's input size, float32."""
        return resize_batch(images.float(), self.image_size)

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


def is_weak(val_auroc: dict) -> bool:
    """Weak unless the val AUROC's CI lower bound is at least WEAK_JUDGE_AUROC (no interval: weak)."""
    low = val_auroc.get("ci_low")
    return not (low is not None and low >= WEAK_JUDGE_AUROC)


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
                judge = load(candidate, device, fingerprint=folder.name)
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
    from xraymunit.progress import progress as progress_display

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
    with progress_display(cfg.classifier.steps, "judge", "step", bar=progress) as bar:
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
    info["weak"] = is_weak(info["val_auroc"])
    save(folder, res.model, threshold, info)
    judge = Judge(res.model.eval(), float(threshold), info, device)
    log.info("judge trained in %.0f s → %s — %s", info["seconds"], folder, judge.describe())
    if judge.weak:
        log.warning("the judge is weak (val AUROC %s: CI lower bound below %.1f): every judged quality number is "
                    "unreliable", _fmt(info["val_auroc"]), WEAK_JUDGE_AUROC)
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
             "fingerprint": info["fingerprint"], "config": info["config"],
             "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    with atomic.atomic_path(folder / "judge.pt") as tmp:
        torch.save(state, tmp)
    with atomic.atomic_path(folder / "judge.json") as tmp:
        Path(tmp).write_text(json.dumps(info, indent=1))


class _Unusable(Exception):
    """A judge file that was read but must not be used (the reason is the message)."""


def load(folder: str | Path, device: str | torch.device = "cpu", *, fingerprint: str | None = None) -> Judge:
    """A judge saved by `train` (weights-only load; the settings rebuild the network).

    Everything is checked before the network is built: judge.json has what describing the judge
    reads, names `fingerprint` when given (a judge copied from another cohort or settings is not
    this one), agrees with judge.pt, and the settings describe a network within JUDGE_BOUNDS."""
    folder, device = Path(folder), torch.device(device)
    try:
        state = torch.load(folder / "judge.pt", map_location="cpu", weights_only=True)
        info = json.loads((folder / "judge.json").read_text())
        if not isinstance(state, dict) or (state.get("format"), state.get("format_version")) != (
                FORMAT, FORMAT_VERSION):
            raise ValueError("not a judge file of this version")
        _check_files(state, info, fingerprint)
        info["weak"] = is_weak(info["val_auroc"])  # today's rule, also for a judge saved under an older one
        cfg = config.from_dict(JudgeConfig, state["config"])
        _check_size(cfg.classifier)
        model = build_classifier(cfg.classifier, cfg.seed)
        model.load_state_dict(state["state_dict"])
        threshold = float(state["threshold"])
    except _Unusable as exc:
        raise JudgeError(f"the judge in {folder} cannot be used: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - unreadable, truncated, other version, mismatched weights
        raise JudgeError(f"the judge in {folder} cannot be loaded ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return Judge(model.to(device).eval().requires_grad_(False), threshold, info, device)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_files(state: dict, info, fingerprint: str | None) -> None:
    """judge.json holds what `Judge.describe` and `val_auroc` read, names the expected fingerprint
    (and so does judge.pt, when it records one), and its settings are judge.pt's."""
    from xraymunit.checkpoint_bounds import expanded_tensor

    if not isinstance(info, dict):
        raise _Unusable("judge.json is not a table")
    for key in ("val_auroc", "test_auroc"):
        d = info.get(key)
        fields = ("value", "ci_low", "ci_high")
        if not isinstance(d, dict) or not all(d.get(k) is None or _number(d[k]) for k in fields):
            raise _Unusable(f"judge.json has no {key} (value, ci_low, ci_high)")
    counts = info.get("n_train")
    if not _number(info["val_auroc"].get("value")) or not isinstance(counts, dict) or not all(
            type(counts.get(k)) is int for k in ("normal", "abnormal")):
        raise _Unusable("judge.json has no val AUROC or no n_train counts")
    named = [info.get("fingerprint"), *([state["fingerprint"]] if "fingerprint" in state else [])]
    if fingerprint is not None and any(f != fingerprint for f in named):
        other = next(f for f in named if f != fingerprint)
        raise _Unusable(f"it was trained for another cohort or other settings (fingerprint "
                        f"{str(other)[:40]!r}, this cohort's is {fingerprint!r})")
    if info.get("config") != state.get("config"):
        raise _Unusable("judge.json and judge.pt disagree on its settings")
    if problem := expanded_tensor(state):
        raise _Unusable(problem)


# The judge's settings come from a file: bounded before the network is built (a growth rate of
# 4096 alone would allocate ~9 GB). Far beyond DenseNet121 (7 M parameters, growth 32, 4 blocks).
JUDGE_BOUNDS = {"image_size": (16, 1024), "init_features": (1, 1024), "growth_rate": (1, 256), "bn_size": (1, 16)}
MAX_BLOCKS, MAX_LAYERS_PER_BLOCK = 8, 128
MAX_JUDGE_PARAMETERS = 2**26


def _check_size(cfg) -> None:
    """Refuse classifier settings out of JUDGE_BOUNDS or building more than MAX_JUDGE_PARAMETERS
    (counted on the meta device: no memory)."""
    for key, (low, high) in JUDGE_BOUNDS.items():
        if not low <= getattr(cfg, key) <= high:
            raise _Unusable(f"its classifier.{key} = {getattr(cfg, key)} is outside {low}..{high}")
    if len(cfg.block_config) > MAX_BLOCKS or max(cfg.block_config) > MAX_LAYERS_PER_BLOCK:
        raise _Unusable(f"its classifier.block_config has more than {MAX_BLOCKS} blocks or "
                        f"{MAX_LAYERS_PER_BLOCK} layers in a block")
    with torch.device("meta"):
        count = sum(p.numel() for p in Classifier(cfg).parameters())
    if count > MAX_JUDGE_PARAMETERS:
        raise _Unusable(f"its classifier has {count:,} parameters, more than {MAX_JUDGE_PARAMETERS:,}")
