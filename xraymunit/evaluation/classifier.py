"""The downstream normal-vs-abnormal classifier: a one-channel MONAI DenseNet, one training loop.

Every arm goes through `train_classifier` with the same step budget, batch size and seed:
the seed fixes the initial weights and the stream of real images drawn, so two arms of a
seed differ only by what the arm adds (augmentation, synthetic images). The model kept is
the one with the best validation AUROC; the test split is only scored, never looked at.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from xraymunit.config.evaluate import ClassifierConfig
from xraymunit.evaluation.datasets import ImageSet
from xraymunit.evaluation.metrics import auroc


class Classifier(nn.Module):
    """A MONAI DenseNet with one input channel and one logit; inputs are [0, 1] images.

    Args:
        cfg: architecture (densenet121, or a small DenseNet for CPU) and its widths.
    """

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        from monai.networks.nets import DenseNet, DenseNet121

        if cfg.arch == "densenet121":
            self.net = DenseNet121(spatial_dims=2, in_channels=1, out_channels=1, dropout_prob=cfg.dropout)
        else:
            self.net = DenseNet(spatial_dims=2, in_channels=1, out_channels=1,
                                init_features=cfg.init_features, growth_rate=cfg.growth_rate,
                                block_config=tuple(cfg.block_config), bn_size=cfg.bn_size,
                                dropout_prob=cfg.dropout)

    @staticmethod
    def _normalise(x: torch.Tensor) -> torch.Tensor:
        return (x - 0.5) / 0.25

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self._normalise(x)).squeeze(1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (global-average-pooled last dense block): the FID/KID space."""
        h = self.net.features(self._normalise(x))
        layers = self.net.class_layers
        return layers.flatten(layers.pool(layers.relu(h)))

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of the stem and of every dense block: the layers of the LPIPS-style distance."""
        h = self._normalise(x)
        maps = []
        for name, module in self.net.features.named_children():
            h = module(h)
            if name == "pool0" or name.startswith("denseblock"):
                maps.append(h)
        return maps


def build_classifier(cfg: ClassifierConfig, seed: int) -> Classifier:
    """The initial weights depend only on the seed (identical across arms)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Classifier(cfg)


@dataclass
class TrainPool:
    """The training images of one run: real normals, real abnormals, optional synthetic abnormals."""

    normal: torch.Tensor
    abnormal: torch.Tensor
    synthetic: torch.Tensor | None = None
    synthetic_mix: float = 0.5
    balanced: bool = True

    def counts(self) -> dict:
        return {"real_normal": int(len(self.normal)), "real_abnormal": int(len(self.abnormal)),
                "synthetic_abnormal": int(0 if self.synthetic is None else len(self.synthetic))}


class BatchSampler:
    """Draws batches with replacement from a TrainPool, from two independent random streams.

    The real stream (labels, which normal, which real abnormal) is the same whatever the arm;
    the synthetic stream only decides which abnormal slots are filled with a synthetic image.
    """

    def __init__(self, pool: TrainPool, batch_size: int, seed: int):
        self.pool, self.batch_size = pool, batch_size
        self.real_rng = np.random.default_rng([seed, 1])
        self.synth_rng = np.random.default_rng([seed, 2])
        n_n, n_a = len(pool.normal), len(pool.abnormal)
        self.p_abnormal = 0.5 if pool.balanced else n_a / max(1, n_n + n_a)

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        pool, b = self.pool, self.batch_size
        is_abn = self.real_rng.random(b) < self.p_abnormal
        normal_pick = self.real_rng.integers(0, len(pool.normal), b)
        real_pick = self.real_rng.integers(0, len(pool.abnormal), b)
        synth_coin = self.synth_rng.random(b)
        has_synth = pool.synthetic is not None and len(pool.synthetic) > 0
        synth_pick = self.synth_rng.integers(0, len(pool.synthetic) if has_synth else 1, b)
        images = []
        for i in range(b):
            if not is_abn[i]:
                images.append(pool.normal[normal_pick[i]])
            elif has_synth and synth_coin[i] < pool.synthetic_mix:
                images.append(pool.synthetic[synth_pick[i]])
            else:
                images.append(pool.abnormal[real_pick[i]])
        return torch.stack(images).float(), torch.as_tensor(is_abn, dtype=torch.float32)


@dataclass
class TrainResult:
    """The model selected on val, when it was selected, and the curves that led there."""

    model: Classifier
    best_step: int
    best_val_auroc: float
    history: list[dict] = field(default_factory=list)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, device: str | torch.device, batch_size: int = 64) -> np.ndarray:
    """Probability of abnormal for each image (eval mode; no augmentation)."""
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        out.append(torch.sigmoid(model(images[i:i + batch_size].to(device))).float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


@torch.no_grad()
def embed(model: Classifier, images: torch.Tensor, device: str | torch.device, batch_size: int = 64) -> np.ndarray:
    model.eval()
    out = [model.embed(images[i:i + batch_size].to(device)).double().cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


class RunAbandoned(Exception):
    """A classifier run stopped before its last step on request; nothing of it is kept."""


def train_classifier(
    pool: TrainPool,
    val: ImageSet,
    cfg: ClassifierConfig,
    seed: int,
    device: str | torch.device = "cpu",
    augment=None,
    progress=None,
    stop=None,
) -> TrainResult:
    """Train for exactly cfg.steps steps; keep the weights with the best val AUROC.

    Args:
        pool: training images of this arm.
        val: real validation images (model selection only).
        cfg: architecture and budget (the same for every arm).
        seed: fixes initial weights, batch stream and dropout.
        augment: callable on a batch (classical augmentation) or None.
        progress: a tqdm bar advanced once per step, or None.
        stop: a `xraymunit.stopping` flag; once it is requested the run is abandoned between two
            steps (RunAbandoned), so a SIGTERM never waits for a whole run.
    """
    if len(pool.normal) == 0 or len(pool.abnormal) == 0:
        raise ValueError("a training pool needs at least one normal and one abnormal image")
    model = build_classifier(cfg, seed).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
    sampler = BatchSampler(pool, cfg.batch_size, seed)
    best_state, best_auc, best_step, history, losses = None, -1.0, 0, [], []
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout
        for step in range(1, cfg.steps + 1):
            if stop is not None and stop.requested:
                raise RunAbandoned(f"abandoned at step {step - 1} of {cfg.steps}")
            x, y = sampler()
            if augment is not None:
                x = augment(x)
            loss = F.binary_cross_entropy_with_logits(model(x.to(device)), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress.update(1)
            if step % cfg.eval_every == 0 or step == cfg.steps:
                auc = auroc(val.labels, predict(model, val.images, device))
                history.append({"step": step, "train_loss": float(np.mean(losses)), "val_auroc": auc})
                losses = []
                if not np.isfinite(auc):  # val has one class: no selection possible, keep the last step
                    best_auc, best_step, best_state = float("nan"), step, None
                    if step == cfg.steps:
                        best_state = copy.deepcopy(model.state_dict())
                elif best_state is None or auc > best_auc:
                    best_auc, best_step = auc, step
                    best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model=model, best_step=best_step, best_val_auroc=float(best_auc), history=history)
