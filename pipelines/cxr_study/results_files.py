"""What every study publisher writes the same way: a run's pictures copied in, metrics.json + summary.md out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def copy_run_pictures(run: Path, grid_to: Path, quality_to: Path | None = None) -> None:
    """A training run's last a2b sample grid (and its quality.png) into results, when they exist."""
    grids = sorted((Path(run) / "samples").glob("a2b_*.png"))
    if grids:
        shutil.copy2(grids[-1], grid_to)
    if quality_to is not None and (Path(run) / "quality.png").is_file():
        shutil.copy2(Path(run) / "quality.png", quality_to)


def write_results(results: Path, metrics: dict, render) -> Path:
    """metrics.json and the summary.md rendered from it (tests/test_results.py checks the pair)."""
    (results / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    (results / "summary.md").write_text(render(metrics))
    print(results / "summary.md")
    return results / "summary.md"
