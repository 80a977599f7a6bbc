"""The notebooks run headless, top to bottom, on real stage outputs, and are stored without outputs.

They are executed with nbclient in a `python3` kernel (this interpreter: jupyter_client
launches the kernelspec's `python` as sys.executable; the spec comes from ipykernel, installed
with the dev extra, in this environment's share/jupyter or as its built-in native spec),
with the run folder passed through the environment exactly as a user would set it.
A failing cell fails the test with the cell's source and traceback.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import REPO
from fixtures.ingest_fixtures import built, ingested  # noqa: F401 (fixtures)

NOTEBOOKS = REPO / "notebooks"
ALL = ["augment_your_classifier.ipynb", "cohort_analysis.ipynb", "synthetic_review.ipynb"]
CELL_TIMEOUT_S = 600  # per cell; the cells take seconds, the margin is for a loaded shared CPU


def use_this_environments_kernel(monkeypatch) -> None:
    """Search this environment's share/jupyter first, so a user-level `python3` kernelspec pointing at
    another interpreter cannot take over (ipykernel installs its spec there; without one, jupyter_client
    falls back to ipykernel's native spec, which is this interpreter too)."""
    share = str(Path(sys.prefix) / "share" / "jupyter")
    rest = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join([share, *rest]))


def execute(name: str, monkeypatch, **env: str) -> nbformat.NotebookNode:
    """Run a stored notebook in a fresh python3 kernel with cwd notebooks/ and `env` set."""
    from nbclient import NotebookClient

    use_this_environments_kernel(monkeypatch)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MPLBACKEND", "Agg")  # `%matplotlib inline` in the notebooks still renders PNGs
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    return nb


def outputs(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def text_of(nb) -> str:
    parts = []
    for o in outputs(nb):
        if o.output_type == "stream":
            parts.append(o.text)
        elif "data" in o:
            parts.append(o.data.get("text/plain", ""))
    return "\n".join(parts)


def images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for o in outputs(nb))


@pytest.mark.parametrize("name", ALL)
def test_stored_without_outputs_and_with_python3_kernel(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", []) and "XRAYMUNIT_RUN" in code[0].source
    assert not any(line.lstrip().startswith(("def ", "class ")) for c in code for line in c.source.splitlines())


def test_python3_kernel_is_this_interpreter(monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    use_this_environments_kernel(monkeypatch)
    spec = KernelSpecManager().get_kernel_spec("python3")
    km = KernelManager(kernel_name="python3")
    cmd = km.format_kernel_cmd()
    assert cmd[0] == sys.executable, (spec.resource_dir, cmd)


@pytest.mark.slow
def test_cohort_analysis_runs_on_the_default_run(default_run, monkeypatch):
    nb = execute("cohort_analysis.ipynb", monkeypatch, XRAYMUNIT_RUN=str(default_run))
    text = text_of(nb)
    assert f"cohort:    {default_run / 'cohort'}" in text
    assert "skipping this section" not in text  # synthetic and evaluation sections ran
    assert "Fréchet distance to real abnormal" in text and "LPIPS-style" in text
    assert "judge val AUROC" in text or "val_auroc" in text  # the cohort's judge, next to its numbers
    # metadata, intensity histograms, montage of real images, training quality curves, synthetic grid
    assert images(nb) == 5


@pytest.mark.slow
def test_cohort_analysis_runs_on_a_bare_cohort_with_ingest_problems(ingested, monkeypatch):  # noqa: F811
    cohort = ingested[0]
    nb = execute("cohort_analysis.ipynb", monkeypatch, XRAYMUNIT_RUN=str(cohort))
    text = text_of(nb)
    assert text.count("skipping this section") == 2  # no synth/, no report/
    assert "truncated" in text and "unsupported_transfer_syntax" in text  # the problems table is shown
    assert images(nb) == 3


@pytest.mark.slow
def test_synthetic_review_runs_and_exports_a_blinded_set(default_run, monkeypatch, tmp_path):
    out = tmp_path / "reading"
    nb = execute("synthetic_review.ipynb", monkeypatch, XRAYMUNIT_RUN=str(default_run),
                 XRAYMUNIT_REVIEW_OUT=str(out))
    text = text_of(nb)
    assert "nothing to unblind" in text
    assert images(nb) == 3  # grid, filtered grid, one source with difference maps
    sheet = out / "for_reviewer" / "review_sheet.csv"
    assert sheet.is_file() and (out / "answer_key.csv").is_file()
    assert not (out / "for_reviewer" / "answer_key.csv").exists()
    assert f"keep back: {out / 'answer_key.csv'}" in text
    n_images = len(list((out / "for_reviewer" / "images").iterdir()))
    assert n_images == len(sheet.read_text().splitlines()) - 1 > 0


@pytest.mark.slow
def test_augment_your_classifier_trains_three_arms_on_the_default_run(default_run, monkeypatch):
    nb = execute("augment_your_classifier.ipynb", monkeypatch, XRAYMUNIT_RUN=str(default_run))
    text = text_of(nb)
    assert "Translator(normal ↔ abnormal" in text and images(nb) == 1  # the translations figure
    assert all(arm in text for arm in ("real only", "real + RandTranslated", "real + synthesize's files"))
    done = re.search(r"RandTranslated replaced (\d+) normal training images by translations; arm 3 drew (\d+) "
                     r"synthetic files", text)
    assert done and int(done.group(1)) > 0 and int(done.group(2)) > 0, text[-2000:]
