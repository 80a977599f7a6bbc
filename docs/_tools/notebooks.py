"""The notebooks as site pages: markdown cells as they are, code cells as Python blocks, and the
outputs a run produced (text, tables' plain text, PNG figures inline, errors).

The stored notebooks have no outputs (tests/test_notebooks.py keeps it so). With
XRAYMUNIT_DOCS_RUN=RUN_FOLDER set (e.g. runs/default after `bash pipelines/run_default.sh`), the
build executes each one on that run first, so the pages show outputs produced at build time.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
CELL_TIMEOUT_S = 600

STORED_NOTE = ("!!! note\n    This page shows the notebook as stored, without outputs. Build the site with "
               "`XRAYMUNIT_DOCS_RUN=runs/default` (after `bash pipelines/run_default.sh`) to execute it on that "
               "run and show its outputs here.\n")


def execute(nb: nbformat.NotebookNode, run: Path) -> nbformat.NotebookNode:
    """Run the notebook top to bottom on `run` (cwd notebooks/, as a user opens it); a failing cell raises."""
    from nbclient import NotebookClient

    previous = os.environ.get("XRAYMUNIT_RUN")
    os.environ["XRAYMUNIT_RUN"] = str(run.resolve())
    os.environ.setdefault("MPLBACKEND", "Agg")  # `%matplotlib inline` still renders PNGs
    try:
        NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", allow_errors=False,
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    finally:
        if previous is None:
            os.environ.pop("XRAYMUNIT_RUN", None)
        else:
            os.environ["XRAYMUNIT_RUN"] = previous
    return nb


def _fence(text: str, language: str = "text") -> str:
    ticks = "````" if "```" in text else "```"
    return f"{ticks}{language}\n{text.rstrip()}\n{ticks}"


def render_output(output: nbformat.NotebookNode) -> str:
    if output.output_type == "stream":
        return _fence(output.text)
    if output.output_type == "error":
        return _fence(f"{output.ename}: {output.evalue}")
    data = output.get("data", {})
    if "image/png" in data:
        return f'<img alt="figure" src="data:image/png;base64,{data["image/png"].strip()}">'
    if "text/plain" in data:
        return _fence(data["text/plain"])
    return ""


def render(nb: nbformat.NotebookNode, source: str) -> str:
    """One markdown page for the notebook (`source`: where it lives, named at the top)."""
    parts = []
    executed = any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            parts.append(cell.source)
            if index == 0:
                parts.append(f"*Notebook `{source}`*" + ("" if executed else "\n\n" + STORED_NOTE))
        elif cell.cell_type == "code":
            parts.append(_fence(cell.source, "python"))
            parts += [text for text in map(render_output, cell.get("outputs", [])) if text]
    return "\n\n".join(parts) + "\n"


def pages() -> dict[str, str]:
    """site path -> markdown of every notebook (executed on XRAYMUNIT_DOCS_RUN when it is set)."""
    run = os.environ.get("XRAYMUNIT_DOCS_RUN")
    out = {}
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if run:
            nb = execute(nb, Path(run))
        out[f"notebooks/{path.stem}.md"] = render(nb, f"notebooks/{path.name}")
    return out
