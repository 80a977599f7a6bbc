"""What every study publisher writes the same way: a run's pictures copied in, metrics.json + summary.md out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def compact_png(src: Path, dst: Path, palette: bool = False) -> None:
    """Copy a picture into results at a fraction of its size (a results folder must stay under ~5 MB):
    an opaque alpha channel is dropped and gray pictures stored as 8-bit gray (both lossless);
    palette=True stores a colour figure in 256 colours — for line plots only: radiographs in a grid
    would lose gray levels, and banding must never be mistaken for the generator's."""
    im = Image.open(src)
    im.load()
    if im.mode in ("RGBA", "LA") and np.asarray(im.getchannel("A")).min() == 255:
        im = im.convert("RGB" if im.mode == "RGBA" else "L")
    if im.mode == "RGB":
        rgb = np.asarray(im)
        gray = (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
        im = im.convert("L") if gray else im.quantize(256, method=Image.Quantize.MEDIANCUT) if palette else im
    tmp = dst.with_name(dst.name + ".tmp")
    im.save(tmp, format="PNG", optimize=True)
    tmp.replace(dst)


def copy_run_pictures(run: Path, grid_to: Path | None, quality_to: Path | None = None) -> None:
    """A training run's last a2b sample grid (and its quality.png) into results, when they exist."""
    grids = sorted((Path(run) / "samples").glob("a2b_*.png"))
    if grids and grid_to is not None:
        compact_png(grids[-1], grid_to)
    if quality_to is not None and (Path(run) / "quality.png").is_file():
        compact_png(Path(run) / "quality.png", quality_to, palette=True)


def write_results(results: Path, metrics: dict, render) -> Path:
    """metrics.json and the summary.md rendered from it (tests/test_results.py checks the pair)."""
    (results / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    (results / "summary.md").write_text(render(metrics))
    print(results / "summary.md")
    return results / "summary.md"


if __name__ == "__main__":  # python pipelines/cxr_study/results_files.py SRC.png DST.png [--palette] (shell scripts)
    import sys

    compact_png(Path(sys.argv[1]), Path(sys.argv[2]), palette="--palette" in sys.argv[3:])
