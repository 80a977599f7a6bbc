"""Options of `xraymunit train`: the MUNIT model, its losses, optimiser, data and loop.

Defaults are the paper's / reference implementation's, adapted to one-channel images.
Every key is explained in configs/munit_cxr_256.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from xraymunit.config import ConfigError, require
from xraymunit.config.evaluate import JudgeConfig


@dataclass
class ModelConfig:
    dim: int = 64
    style_dim: int = 8
    n_downsample: int = 2
    n_res: int = 4
    mlp_dim: int = 256
    mlp_layers: int = 3
    style_downsample: int = 4
    pad_type: Literal["reflect", "replicate", "zeros"] = "reflect"
    dis_dim: int = 64
    dis_layers: int = 4
    dis_scales: int = 3
    gen_init: Literal["kaiming", "gaussian"] = "kaiming"
    dis_init: Literal["kaiming", "gaussian"] = "gaussian"
    output: Literal["image", "residual_mask"] = "image"

    def validate(self) -> None:
        for key in ("dim", "style_dim", "mlp_dim", "mlp_layers", "dis_dim", "dis_layers", "dis_scales"):
            require(getattr(self, key) >= 1, key, "must be >= 1")
        require(self.n_downsample >= 0, "n_downsample", "must be >= 0")
        require(self.n_res >= 0, "n_res", "must be >= 0")
        require(self.style_downsample >= 0, "style_downsample", "must be >= 0")

    def generator_kwargs(self) -> dict:
        return dict(in_channels=1, dim=self.dim, style_dim=self.style_dim, n_downsample=self.n_downsample,
                    n_res=self.n_res, mlp_dim=self.mlp_dim, mlp_layers=self.mlp_layers,
                    style_downsample=self.style_downsample, pad_type=self.pad_type, output=self.output)

    def discriminator_kwargs(self) -> dict:
        return dict(in_channels=1, dim=self.dis_dim, n_layers=self.dis_layers, n_scales=self.dis_scales,
                    pad_type=self.pad_type)


@dataclass
class LossConfig:
    gan: float = 1.0
    image_recon: float = 10.0
    style_recon: float = 1.0
    content_recon: float = 1.0
    cycle: float = 0.0
    perceptual: float = 0.0
    diversity: float = 0.0
    identity: float = 0.0
    mask_sparsity: float = 0.0
    mask_smoothness: float = 0.0
    d_augment: list[Literal["brightness", "contrast", "translation", "cutout"]] = field(default_factory=list)
    d_augment_prob: float = 1.0
    d_augment_strength: float = 1.0
    apa: float = 0.0

    WEIGHTS = ("gan", "image_recon", "style_recon", "content_recon", "cycle", "perceptual", "diversity",
               "identity", "mask_sparsity", "mask_smoothness")

    def validate(self) -> None:
        for key in self.WEIGHTS:
            require(getattr(self, key) >= 0, key, "must be >= 0")
        require(len(set(self.d_augment)) == len(self.d_augment), "d_augment", "lists an augmentation twice")
        require(0 <= self.d_augment_prob <= 1, "d_augment_prob", "must be in [0, 1]")
        require(0 < self.d_augment_strength <= 4, "d_augment_strength", "must be in (0, 4]")
        require(0 <= self.apa < 1, "apa", "must be in [0, 1)")


@dataclass
class PerceptualConfig:
    backbone: Literal["imagenet", "file", "random"] = "imagenet"
    weights: Optional[str] = None
    layer: Literal["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"] = "relu5_3"
    seed: int = 0

    def validate(self) -> None:
        require(self.backbone != "file" or bool(self.weights), "weights",
                "must name a VGG16 state-dict file when backbone is 'file'")


@dataclass
class OptimConfig:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 1e-4
    lr_step: int = 100_000
    lr_gamma: float = 0.5

    def validate(self) -> None:
        require(self.lr > 0, "lr", "must be > 0")
        require(all(0 <= b < 1 for b in self.betas), "betas", "must be in [0, 1)")
        require(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        require(self.lr_step >= 1, "lr_step", "must be >= 1")
        require(0 < self.lr_gamma <= 1, "lr_gamma", "must be in (0, 1]")


@dataclass
class AugmentConfig:
    enabled: bool = True
    prob: float = 0.5
    rotate_deg: float = 5.0
    scale: float = 0.05
    translate: float = 0.03
    gamma: tuple[float, float] = (0.8, 1.25)
    noise_std: float = 0.0
    hflip: bool = False
    # What the affine fills in outside the image: border (repeat the edge pixels), zeros or reflection.
    # Zeros put black corners into the discriminator's reals, which the generator then learns to draw.
    padding: Literal["border", "zeros", "reflection"] = "border"
    # The discriminator's real images get the geometry of the generator's input but not its
    # photometric changes (gamma, noise), so they are not learnt as part of the target domain.
    photometric_for_discriminator: bool = False

    def validate(self) -> None:
        require(0 <= self.prob <= 1, "prob", "must be in [0, 1]")
        require(self.rotate_deg >= 0 and self.scale >= 0 and self.translate >= 0, "rotate_deg",
                "rotate_deg, scale and translate must be >= 0")
        require(0 < self.gamma[0] <= self.gamma[1], "gamma", "must be [low, high] with 0 < low <= high")
        require(self.noise_std >= 0, "noise_std", "must be >= 0")


@dataclass
class DataConfig:
    domain_a: str = "normal"
    domain_b: str = "abnormal"
    split: str = "train"
    source_datasets: Optional[list[str]] = None
    # Train domain B on only these manifest image_keys (a low-data level's K real abnormals);
    # None = every domain-B image of the split. Unknown keys stop training before it starts.
    domain_b_keys: Optional[list[str]] = None
    load_size: int = 256
    crop_size: int = 256
    num_workers: int = 2
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self) -> None:
        require(self.domain_a != self.domain_b, "domain_b", "must differ from domain_a")
        require(self.domain_b_keys is None or len(self.domain_b_keys) >= 1, "domain_b_keys",
                "must list at least one image_key, or be null (all domain-B images)")
        require(self.domain_b_keys is None or len(set(self.domain_b_keys)) == len(self.domain_b_keys),
                "domain_b_keys", "must not repeat an image_key")
        require(self.crop_size >= 8, "crop_size", "must be >= 8")
        require(self.load_size >= self.crop_size, "load_size", "must be >= crop_size")
        require(self.num_workers >= 0, "num_workers", "must be >= 0")


@dataclass
class LoopConfig:
    steps: int = 1_000_000
    batch_size: int = 1
    seed: int = 0
    device: str = "auto"
    amp: Literal["auto", "bf16", "none"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    compile: bool = False
    log_every: int = 10
    image_every: int = 1000
    n_sample_images: int = 4
    n_sample_styles: int = 4
    checkpoint_every: int = 1000
    keep_every: int = 10_000
    shortcut_test: bool = True  # before training: can a trivial model tell the domains apart? (xraymunit/confounds.py)
    quality_every: int = 1000
    time_limit_minutes: float = 0.0

    def validate(self) -> None:
        require(self.steps >= 1, "steps", "must be >= 1")
        require(self.batch_size >= 1, "batch_size", "must be >= 1")
        for key in ("log_every", "image_every", "checkpoint_every", "keep_every", "n_sample_images",
                    "n_sample_styles"):
            require(getattr(self, key) >= 1, key, "must be >= 1")
        require(self.quality_every >= 0, "quality_every", "must be >= 0 (0: no quality tracking)")
        require(self.time_limit_minutes >= 0, "time_limit_minutes", "must be >= 0 (0: no limit)")
        require(self.device in ("auto", "cpu", "mps") or self.device.startswith("cuda"),
                "device", "must be auto, cpu, cuda, cuda:N or mps")


@dataclass
class MonitorConfig:
    """Quality tracked during training (xraymunit/quality/training_monitor.py), every train.quality_every steps."""

    n_inputs: int = 64
    n_styles: int = 4
    n_reference: int = 64
    max_pairs: int = 256
    lowpass_sigma: float = 0.02
    best_by: Literal["score", "success", "fd"] = "score"
    judge: JudgeConfig = field(default_factory=JudgeConfig)

    def validate(self) -> None:
        require(self.n_inputs >= 2, "n_inputs", "must be >= 2")
        require(self.n_styles >= 2, "n_styles", "must be >= 2 (diversity needs two styles per input)")
        require(self.n_reference >= 2, "n_reference", "must be >= 2")
        require(self.max_pairs >= 1, "max_pairs", "must be >= 1")
        require(0 < self.lowpass_sigma < 0.5, "lowpass_sigma", "must be in (0, 0.5) (a fraction of the side)")
        self.judge.validate()


@dataclass
class TrainConfig:
    name: str = "munit"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    quality: MonitorConfig = field(default_factory=MonitorConfig)

    def validate(self) -> None:
        crop, m = self.data.crop_size, self.model
        require(crop % (2**m.n_downsample) == 0, "data.crop_size",
                f"must be divisible by 2**model.n_downsample = {2**m.n_downsample}")
        require(crop >= 2**m.style_downsample, "data.crop_size",
                f"must be >= 2**model.style_downsample = {2**m.style_downsample}")
        smallest = crop // 2 ** (m.dis_scales - 1)
        require(smallest >= 2**m.dis_layers, "data.crop_size",
                f"is too small for {m.dis_scales} discriminator scales of {m.dis_layers} layers "
                f"(needs >= {2 ** m.dis_layers * 2 ** (m.dis_scales - 1)})")
        require(self.loss.gan + self.loss.image_recon > 0, "loss.gan", "and loss.image_recon cannot both be 0")
        for key in ("mask_sparsity", "mask_smoothness"):
            require(getattr(self.loss, key) == 0 or m.output == "residual_mask", f"loss.{key}",
                    "needs model.output: residual_mask (image mode has no mask)")


# Keys that may change when a run is resumed; anything else must match the saved run.
RESUMABLE_KEYS = {"train.steps", "train.device", "train.log_every", "train.image_every",
                  "train.checkpoint_every", "train.keep_every", "train.compile", "data.num_workers",
                  "train.quality_every", "train.shortcut_test", "train.time_limit_minutes"}
RESUMABLE_SECTIONS = ("quality",)  # what is measured, not what is trained


def resume_conflicts(saved: dict, new: dict, prefix: str = "", defaults: dict | None = None) -> list[str]:
    """Keys whose value differs between a saved run config and a new one (nested dicts).

    A key the saved config lacks (written before the key existed) counts as its default from
    `defaults` (today's TrainConfig() when None): such a run trained with what the default means."""
    if defaults is None and not prefix:
        from xraymunit.config import to_dict

        defaults = to_dict(TrainConfig())
    defaults = defaults or {}
    keys = []
    for key in sorted(set(saved) | set(new)):
        path = f"{prefix}{key}"
        a, b = saved.get(key, defaults.get(key)), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += resume_conflicts(a, b, path + ".", defaults.get(key) if isinstance(defaults.get(key), dict) else {})
        elif a != b and path not in RESUMABLE_KEYS and not path.startswith(RESUMABLE_SECTIONS):
            keys.append(path)
    return keys


__all__ = ["TrainConfig", "ModelConfig", "LossConfig", "PerceptualConfig", "OptimConfig", "DataConfig",
           "AugmentConfig", "LoopConfig", "MonitorConfig", "ConfigError", "resume_conflicts", "RESUMABLE_KEYS"]
