"""Options of `xraymunit evaluate`: the downstream classifier study and the quality metrics.

One dataclass per concern, each with validate(), so a bad value fails before any
training starts. configs/evaluate.yaml explains every key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Union

from xraymunit.config import ConfigError, require
from xraymunit.options import option
from xraymunit.runtime import DEVICE_HELP, THREADS_AUTO

ARMS = ("real", "classical", "synthetic", "classical+synthetic", "intensity_control", "duplicate_real",
        "classical+intensity_control", "classical+duplicate_real")
"""The arms: (1) real only, (2) + classical augmentation, (3) + synthetic abnormal, (4) both; and the
controls of (3)/(4): the synthetic images replaced row for row by their source normals histogram-matched
to the level's real abnormals (intensity_control), or by the level's K real abnormals repeated to the
same count (duplicate_real), each also with classical augmentation."""

CONTROLS = ("intensity_control", "duplicate_real")
"""What a synthetic image is replaced by in a control arm (xraymunit/evaluation/controls.py)."""

DEFAULT_ARMS = ("real", "classical", "synthetic", "classical+synthetic", "intensity_control", "duplicate_real")


def arm_parts(arm: str) -> tuple[bool, str | None]:
    """(classical augmentation?, what the arm adds to the real images: None, 'synthetic' or a control)."""
    classical = arm == "classical" or arm.startswith("classical+")
    added = arm.removeprefix("classical+")
    return classical, None if added in ("real", "classical") else added


def needs_synthetic(arm: str) -> bool:
    """Arms that train on the synthetic selection (the controls mirror it row for row or by count)."""
    return arm_parts(arm)[1] is not None

SPLITS = ("train", "val", "test")


@dataclass
class ClassifierConfig:
    """The normal-vs-abnormal network and its training budget (identical for every arm)."""

    arch: Literal["densenet121", "densenet"] = "densenet"
    image_size: int = 64
    init_features: int = 16
    growth_rate: int = 8
    block_config: tuple[int, ...] = (2, 2, 2)
    bn_size: int = 4
    dropout: float = 0.0
    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    eval_every: int = 50
    balanced_batches: bool = True

    def validate(self) -> None:
        require(self.image_size >= 16, "image_size", "must be >= 16 pixels")
        require(self.init_features >= 1, "init_features", "must be >= 1")
        require(self.growth_rate >= 1, "growth_rate", "must be >= 1")
        require(len(self.block_config) >= 1 and all(b >= 1 for b in self.block_config),
                "block_config", "must be a non-empty list of positive integers")
        require(self.image_size // 2 ** (len(self.block_config) + 1) >= 1, "image_size",
                f"is too small for {len(self.block_config)} dense blocks")
        require(self.bn_size >= 1, "bn_size", "must be >= 1")
        require(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        require(self.steps >= 1, "steps", "must be >= 1")
        require(self.batch_size >= 2, "batch_size", "must be >= 2")
        require(self.lr > 0, "lr", "must be > 0")
        require(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        require(self.eval_every >= 1, "eval_every", "must be >= 1")


@dataclass
class AugmentConfig:
    """Classical augmentation of arms 2 and 4 (MONAI random affine, intensity, noise)."""

    prob: float = 0.8
    rotate_deg: float = 10.0
    translate_frac: float = 0.06
    scale: float = 0.10
    contrast_gamma: tuple[float, float] = (0.7, 1.4)
    intensity_scale: float = 0.10
    intensity_shift: float = 0.05
    noise_std: float = 0.02

    def validate(self) -> None:
        require(0.0 <= self.prob <= 1.0, "prob", "must be in [0, 1]")
        require(0.0 <= self.rotate_deg <= 180.0, "rotate_deg", "must be in [0, 180]")
        require(0.0 <= self.translate_frac < 0.5, "translate_frac", "must be in [0, 0.5)")
        require(0.0 <= self.scale < 1.0, "scale", "must be in [0, 1)")
        lo, hi = self.contrast_gamma
        require(0.0 < lo <= hi, "contrast_gamma", "must be [low, high] with 0 < low <= high")
        require(0.0 <= self.intensity_scale < 1.0, "intensity_scale", "must be in [0, 1)")
        require(0.0 <= self.intensity_shift < 1.0, "intensity_shift", "must be in [0, 1)")
        require(self.noise_std >= 0.0, "noise_std", "must be >= 0")


@dataclass
class SyntheticConfig:
    """How synthetic abnormal images enter training in arms 3 and 4."""

    mix: float = 0.5
    max_styles_per_source: int = 0
    direction: Literal["a2b", "b2a", "any"] = "any"
    intended_label: str = "abnormal"

    def validate(self) -> None:
        require(0.0 < self.mix < 1.0, "mix", "must be in (0, 1): the share of synthetic images "
                "among the abnormal images of a batch")
        require(self.max_styles_per_source >= 0, "max_styles_per_source", "must be >= 0 (0 = all)")
        require(bool(self.intended_label), "intended_label", "must not be empty")


@dataclass
class StatsConfig:
    """Uncertainty and operating points of the classifier metrics."""

    bootstrap: int = 1000
    ci: float = 0.95
    specificity: float = 0.90
    threshold: Literal["youden", "specificity"] = "youden"
    bootstrap_unit: Literal["patient", "image"] = "patient"

    def validate(self) -> None:
        require(self.bootstrap >= 50, "bootstrap", "must be >= 50 resamples")
        require(0.5 <= self.ci < 1.0, "ci", "must be in [0.5, 1)")
        require(0.0 < self.specificity < 1.0, "specificity", "must be in (0, 1)")


@dataclass
class JudgeConfig:
    """The judge (xraymunit/quality/judge.py): one normal-vs-abnormal classifier per cohort, trained on its
    real train split, selected on val; the measuring instrument of quality, never a training input."""

    classifier: ClassifierConfig = field(default_factory=lambda: ClassifierConfig(steps=600, eval_every=50))
    normal_label: str = "normal"
    abnormal_label: str = "abnormal"
    source_datasets: Optional[list[str]] = None
    seed: int = 0
    bootstrap: int = 1000
    ci: float = 0.95

    def validate(self) -> None:
        self.classifier.validate()
        require(self.normal_label != self.abnormal_label, "abnormal_label", "must differ from normal_label")
        require(self.bootstrap >= 0, "bootstrap", "must be >= 0")
        require(0.5 < self.ci < 1.0, "ci", "must be in (0.5, 1)")


@dataclass
class BackboneConfig:
    """A pretrained DenseNet-121 (xraymunit/quality/backbone.py) that measures realism and diversity a second
    time, in a feature space shared by every study (the judge's is this cohort's own)."""

    weights: Optional[str] = None
    image_size: int = 224

    def validate(self) -> None:
        require(self.weights is None or bool(str(self.weights).strip()), "weights",
                "must be a state-dict file path or null")
        require(self.image_size >= 32, "image_size", "must be >= 32 pixels")


@dataclass
class QualityConfig:
    """Image-quality metrics of the synthetic set (diversity, realism, content, memorisation)."""

    enabled: bool = True
    max_sources: int = 50
    max_images: int = 500
    reference_splits: tuple[str, ...] = ("val", "test")
    kid_subset_size: int = 100
    kid_subsets: int = 50
    fd_bootstrap: int = 20
    bootstrap: int = 200
    ms_ssim_kernel: int = 11
    ms_ssim_scales: int = 5
    lowpass_sigma: float = 0.02
    ssim_window: int = 7
    memorisation_size: int = 64
    grid_sources: int = 4
    grid_styles: int = 6
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)

    def validate(self) -> None:
        require(self.max_sources >= 1, "max_sources", "must be >= 1")
        require(self.max_images >= 4, "max_images", "must be >= 4")
        require(len(self.reference_splits) >= 1 and all(s in SPLITS for s in self.reference_splits),
                "reference_splits", f"must be a non-empty subset of {list(SPLITS)}")
        require(self.kid_subset_size >= 2, "kid_subset_size", "must be >= 2")
        require(self.kid_subsets >= 1, "kid_subsets", "must be >= 1")
        require(self.fd_bootstrap >= 0, "fd_bootstrap", "must be >= 0 (0 = no interval)")
        require(self.bootstrap >= 0, "bootstrap", "must be >= 0 (0 = no interval)")
        require(self.ms_ssim_kernel >= 3 and self.ms_ssim_kernel % 2 == 1, "ms_ssim_kernel",
                "must be an odd integer >= 3")
        require(1 <= self.ms_ssim_scales <= 5, "ms_ssim_scales", "must be in 1..5")
        require(0.0 < self.lowpass_sigma < 0.5, "lowpass_sigma",
                "must be in (0, 0.5) (a fraction of the image width)")
        require(self.ssim_window >= 3 and self.ssim_window % 2 == 1, "ssim_window",
                "must be an odd integer >= 3")
        require(self.memorisation_size >= 8, "memorisation_size", "must be >= 8")
        require(self.grid_sources >= 1 and self.grid_styles >= 1, "grid_sources",
                "and grid_styles must be >= 1")
        self.judge.validate()
        self.backbone.validate()


@dataclass
class EvaluateConfig:
    """Everything `xraymunit evaluate` needs besides the input and output folders.

    The fields with a CLI flag (`option`) are the flags of `xraymunit evaluate`; a flag given on
    the command line overrides the config file and --set.
    """

    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    arms: tuple[str, ...] = DEFAULT_ARMS
    seeds: int = option(3, "number of seeds per arm (every arm uses the same seeds)", parse=int, metavar="N")
    seed_base: int = 0
    real_abnormal: tuple[Union[int, str], ...] = option(
        ("all",), "comma-separated numbers of real abnormal training images to keep, e.g. 25,50,100,all "
        "(low-data study; the same K images for every arm of a seed)", metavar="LEVELS")
    # Which K real abnormals a low-data level keeps: per_seed = each seed its own nested subset
    # (seeds also vary the data); shared = every seed the subset of seed_base (seeds vary only
    # initial weights and sampling), so one generator per level trained on those K matches all seeds.
    real_abnormal_subset: Literal["per_seed", "shared"] = "per_seed"
    normal_label: str = "normal"
    abnormal_label: str = "abnormal"
    device: str = option("auto", f"where the classifiers train: {DEVICE_HELP}; with --workers, cuda or auto "
                         "means one GPU per worker, round-robin", metavar="DEV")
    threads: int = option(0, f"CPU threads of torch per process; 0 = automatic: {THREADS_AUTO}, shared out among "
                          "--workers (default: 0); 1 when other work competes for the cores", parse=int, metavar="N")
    progress: Optional[bool] = option(None, "no progress bars (default: bars only when stderr is a terminal)",
                                      flag="--no-progress")
    external_split: str = option("test", "which images of each --test-cohort are scored: its test split (default), "
                                 "train, val, or all of it", metavar="SPLIT")
    workers: int = option(1, "classifier runs trained at the same time by local worker processes (one GPU "
                          "each when several GPUs, else CPU threads shared out); under torchrun the runs are "
                          "spread over the ranks instead", parse=int, metavar="N")

    def validate(self) -> None:
        require(len(self.arms) >= 1, "arms", f"must list at least one of {list(ARMS)}")
        for arm in self.arms:
            require(arm in ARMS, "arms", f"has unknown arm {arm!r}; choose from {list(ARMS)}")
        require(len(set(self.arms)) == len(self.arms), "arms", "must not repeat an arm")
        require(self.seeds >= 1, "seeds", "must be >= 1")
        require(self.seed_base >= 0, "seed_base", "must be >= 0")
        if isinstance(self.real_abnormal, str):  # the CLI form '25,50,all'
            self.real_abnormal = parse_levels(self.real_abnormal)
        require(len(self.real_abnormal) >= 1, "real_abnormal", "must list at least one level")
        self.real_abnormal = tuple(parse_level(v) for v in self.real_abnormal)
        require(len(set(self.real_abnormal)) == len(self.real_abnormal), "real_abnormal",
                "must not repeat a level")
        require(self.real_abnormal_subset in ("per_seed", "shared"), "real_abnormal_subset",
                "must be per_seed or shared")
        require(self.normal_label != self.abnormal_label, "abnormal_label",
                "must differ from normal_label")
        require(self.device in ("auto", "cpu", "mps") or self.device.startswith("cuda"),
                "device", "must be auto, cpu, cuda, cuda:N or mps")
        require(self.threads >= 0, "threads", "must be >= 0 (0 = automatic)")
        require(self.workers >= 1, "workers", "must be >= 1")
        require(self.external_split in (*SPLITS, "all"), "external_split", "must be test, train, val or all")


@dataclass
class EvaluateInputs:
    """What `xraymunit evaluate` reads and where it writes: the CLI's folders and config sources.

    Not part of EvaluateConfig (the study, saved as OUT/evaluate_config.yaml and reusable
    between cohorts); `evaluate(cohort, synthetic, out, config, resume=..., training_run=...)`
    takes the same things as arguments.
    """

    cohort: Optional[str] = option(None, "cohort folder written by `xraymunit ingest` (manifest.parquet + cache/)",
                                   metavar="DIR", required=True)
    synthetic: Optional[list[str]] = option(
        None, "synthetic folder written by `xraymunit synthesize`; without it arms 3 and 4 and the quality metrics "
        "are skipped (the report says so). One generator per low-data level: repeat as LEVEL=DIR (e.g. "
        "--synthetic 25=synth_25 --synthetic all=synth_all); arms 3/4 of level K then use only that level's images. "
        "Several generators of a level: name the level again (--synthetic 25=synth_25_g1 --synthetic "
        "25=synth_25_g2); the intervals then resample generators, seeds and test patients",
        metavar="[LEVEL=]DIR", append=True)
    out: Optional[str] = option(None, "report folder to write (created; files in it are replaced atomically)",
                                metavar="DIR", required=True)
    config: Optional[str] = option(
        None, "evaluation config (e.g. configs/evaluate.yaml for a study, configs/evaluate_tiny.yaml for a quick "
        "CPU smoke run); default: built-in CPU defaults", metavar="YAML")
    overrides: Optional[list[str]] = option(
        None, "override any config key, e.g. --set classifier.steps=500 (repeatable; applied after --config, "
        "before the other flags)", flag="--set", metavar="KEY=VALUE", append=True)
    training_run: Optional[list[str]] = option(
        None, "the MUNIT run folder behind the synthetic images (repeat as LEVEL=RUN_DIR, like --synthetic, one per "
        "synthetic folder in the same order): its quality tracking (quality.csv, quality.png) goes into the report, "
        "and with one generator per level evaluate refuses a generator trained on other real abnormals than the "
        "level's arms use (data.domain_b_keys)", metavar="[LEVEL=]RUN_DIR", append=True)
    test_cohort: Optional[list[str]] = option(
        None, "external validation: another ingested cohort (other patients or another site, ingested with the same "
        "image settings) on which every classifier arm is also scored, with its own patient bootstrap; repeatable. "
        "Its test split, or what --external-split names", metavar="DIR", append=True)
    fresh: bool = option(False, "retrain every run; by default finished runs kept in OUT/runs/ are reused when "
                         "their fingerprint (config, seed, image keys) matches, so an interrupted study resumes")



def parse_level(value: int | str) -> int | str:
    """A real-abnormal level: a positive count K, or 'all'."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "all":
            return "all"
        if not text.isdigit():
            raise ConfigError(f"'real_abnormal' levels must be positive integers or 'all', got {value!r}")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"'real_abnormal' levels must be positive integers or 'all', got {value!r}")
    return value


def parse_levels(text: str) -> tuple[int | str, ...]:
    """Parse the CLI form '25,50,100,all'."""
    parts = [p for p in (s.strip() for s in text.split(",")) if p]
    if not parts:
        raise ConfigError("'real_abnormal' must list at least one level, e.g. 25,50,all")
    return tuple(parse_level(p) for p in parts)
