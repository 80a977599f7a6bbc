"""Every `synthesize` option, declared once: the CLI, the Python API and the pipeline read them here."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from xraymunit.errors import XraymunitError
from xraymunit.options import option
from xraymunit.runtime import DEVICE_HELP, PRECISIONS, THREADS_HELP

DIRECTIONS = ("a2b", "b2a")
FORMATS = ("png", "dicom")
SPLITS = ("train", "val", "test", "all")
MAX_STYLES = 1000  # styles per source image (--n-styles, --interpolate K, --reference images), at most


class SynthesisError(XraymunitError):
    """Synthesis cannot run with these arguments or inputs."""


def parse_formats(text: str) -> tuple[str, ...]:
    """`--format png|dicom|both` → the formats written."""
    if text == "both":
        return FORMATS
    if text not in FORMATS:
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from png, dicom, both)")
    return (text,)


@dataclass
class SynthesizeOptions:
    """What one synthesis writes and how it computes (see `synthesize`)."""

    checkpoint: str | Path = option(
        help="a checkpoint from `xraymunit train`: a file (e.g. runs/x/checkpoints/last.pt), RUN/last, a run "
             "folder (its last.pt), or RUN/best (the best by quality tracking; only when named: its score "
             "favours early, blurry steps)")
    cohort: str | Path = option(help="the cohort folder the source images come from")
    out: str | Path = option(help="output folder (images/, manifest.parquet, synthesis.json); rerunning with the "
                                  "same arguments resumes")
    n_styles: int = option(20, f"random style codes per source image, drawn from the N(0, I) prior "
                               f"(1..{MAX_STYLES})", parse=int)
    split: str = option("train", "cohort split of the source images (train: the images a classifier may "
                                 "train on)", choices=SPLITS)
    direction: str = option("a2b", "a2b: domain_a → domain_b of the training config, e.g. normal → abnormal; "
                                   "b2a: the reverse", choices=DIRECTIONS)
    seed: int = option(0, "fixes every style code (default 0)", parse=int)
    references: Sequence[str | Path] = option(
        help="take the style from these real target-domain images (DICOM, PNG or JPEG) instead of random "
             "codes: one output per reference per source", flag="--reference", nargs="+",
        metavar="IMAGE_OR_DICOM", default_factory=tuple, show_default=False)
    interpolate: int = option(0, "K >= 2: write K images along a spherical (slerp) path between two random "
                                 "styles per source, for review, instead of --n-styles codes; 0: off",
                              parse=int, metavar="K", show_default=False)
    formats: Sequence[str] = option(("png",), "png: 16-bit grayscale PNG; dicom: Secondary Capture with new UIDs "
                                              "and no source patient data; both", flag="--format",
                                    parse=parse_formats, metavar="{png,dicom,both}")
    batch_size: int | None = option(None, "styles decoded per network call (default: 20 on a GPU; on a CPU 2 at "
                                          "256², more for smaller images, up to 8, which keeps the activations "
                                          "in cache); every call renders exactly this many, so the images' "
                                          "last bits depend on it, never on --n-styles", parse=int)
    device: str = option("auto", DEVICE_HELP + "; under torchrun, cuda means each process's own GPU")
    precision: str = option("auto", "auto: bf16 on CUDA and on CPUs with native bf16 (~2x faster), else fp32; "
                                    "part of the run's identity (outputs differ in the last bits)",
                            choices=PRECISIONS)
    compile: bool = option(False, "torch.compile the rendering first: ~1 min of compiling, then 1.0-1.1x faster "
                                  "on a 2-core CPU (renders one image at a time; for thousands of images; "
                                  "needs a C++ compiler on CPU)")
    change_maps: bool = option(False, "also write each image's change map next to it (KEY_change.png, 16-bit: "
                                      "|Δ ⊙ m| of a residual_mask model, |translation − input| of an image "
                                      "model, in the [0, 1] image range) and its path in the manifest "
                                      "(change_map_path)")
    limit: int | None = option(None, "only the first M source images by image_key (M >= 1; default: all)",
                               parse=int, metavar="M")
    render_threads: int | None = option(
        None, "source images rendered at once, one thread each (default: on a CPU as many as torch has "
              "threads, up to 8, each op on one core; 1 on a GPU or with --compile); images do not depend on it",
        parse=int, metavar="T")
    threads: int | None = option(None, THREADS_HELP + "; --render-threads shares them out", parse=int,
                                 metavar="N")
    progress: bool | None = option(None, "no progress bar (default: a bar when stderr is a terminal)",
                                   flag="--no-progress")

    def __post_init__(self) -> None:
        self.formats = tuple(dict.fromkeys(self.formats))
        self.references = tuple(self.references)

    @property
    def style_mode(self) -> str:
        return "reference" if self.references else "interpolate" if self.interpolate else "random"

    def check(self) -> None:
        """Every argument in range, before any work (one line naming the flag)."""
        if self.direction not in DIRECTIONS:
            raise SynthesisError(f"--direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if not self.formats or any(f not in FORMATS for f in self.formats):
            raise SynthesisError(f"--format must be png, dicom or both, got {self.formats}")
        if self.render_threads is not None and int(self.render_threads) < 1:
            raise SynthesisError(f"--render-threads must be at least 1, got {self.render_threads}")
        if not 1 <= self.n_styles <= MAX_STYLES:
            raise SynthesisError(f"--n-styles must be >= 1 and at most {MAX_STYLES}, got {self.n_styles}")
        if self.batch_size is not None and self.batch_size < 1:
            raise SynthesisError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.interpolate and (not 2 <= self.interpolate <= MAX_STYLES or self.references):
            raise SynthesisError(f"--interpolate K needs K >= 2 (at most {MAX_STYLES}) and cannot be combined "
                                 f"with --reference, got K = {self.interpolate}")
        if len(self.references) > MAX_STYLES:
            raise SynthesisError(f"at most {MAX_STYLES} --reference images, got {len(self.references)}")
        if self.limit is not None and self.limit < 1:
            raise SynthesisError(f"--limit must be >= 1 (omit it for every source image), got {self.limit}")
        if self.split not in SPLITS:
            raise SynthesisError(f"--split must be train, val, test or all, got {self.split!r}")
        if self.precision not in PRECISIONS:
            raise SynthesisError(f"--precision must be auto, bf16 or fp32, got {self.precision!r}")
