"""The README's Python example runs as printed, on the default run, and says what it does."""

import re

import numpy as np
import pytest

from conftest import REPO
from xraymunit.io.cohort import SyntheticSet

pytestmark = pytest.mark.slow


def readme_block(heading: str) -> str:
    text = (REPO / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_library_example_runs_and_gives_synthesizes_pixels(default_run):
    code = readme_block("Use a trained generator in your own code").replace("runs/default", str(default_run))
    names: dict = {}
    exec(compile(code, "README.md", "exec"), names)  # noqa: S102 - the README's own example

    item, fakes = names["item"], names["fakes"]
    assert item["label"] == "normal" and fakes.shape == (1, 4, 1, 64, 64)  # as its comment says
    synth = SyntheticSet.open(default_run / "synth")
    rows = synth.manifest[synth.manifest["source_image_key"] == item["image_key"]].sort_values("style_index")
    assert len(rows) >= 4
    for k in range(4):  # the same pixels synthesize wrote for that image (seed 0), to the 16-bit PNG step
        written = synth.image(rows.iloc[k])
        assert np.abs(np.asarray(fakes[0, k, 0]) - written).max() <= 1.0 / 65535 + 1e-6
    assert len(names["augmented"]) > 0 and len(names["mixed"]) > len(names["augmented"])
