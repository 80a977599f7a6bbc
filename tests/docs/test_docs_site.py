"""The documentation: the site builds with warnings as errors, its generated references leave no
config key or CLI flag unexplained, and the files a reader opens first (README, CHANGELOG,
CONTRIBUTING, CITATION.cff) hold what they promise, with links that resolve."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import re
import subprocess
import sys

import pytest
import yaml

from conftest import REPO

sys.path.insert(0, str(REPO / "docs" / "_tools"))
import reference  # noqa: E402

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def _links(markdown: str) -> list[str]:
    """Relative link targets of a markdown text (code blocks and spans left out)."""
    text = re.sub(r"```.*?```", "", markdown, flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    targets = [a or b for a, b in LINK.findall(text)]
    return [t for t in targets if not re.match(r"^[a-z]+:|^#|^/", t)]


@pytest.mark.slow  # a few seconds: the whole site
def test_site_builds_with_warnings_as_errors(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None:
        if os.environ.get("CI"):
            pytest.fail("mkdocs/mkdocstrings missing: CI installs the docs extra (pipelines/setup_env.sh, .[dev])")
        pytest.skip("the docs extra is not installed (pip install -e '.[docs]')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("XRAYMUNIT_DOCS_RUN", None)  # the stored notebooks: executing them is test_notebooks' job
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    site = tmp_path / "site"
    config_page = (site / "reference" / "config" / "index.html").read_text()
    assert "model.output" in config_page and "quality.judge.classifier.arch" in config_page
    assert "--n-styles" in (site / "reference" / "cli" / "index.html").read_text()
    assert "from_checkpoint" in (site / "reference" / "api" / "index.html").read_text()
    assert (site / "results" / "cxr_nih_lowdata" / "summary" / "index.html").is_file()


def test_every_config_key_has_its_explanation():
    for title, _, cls, comments in reference.config_sections():
        keys = list(reference.config_keys(cls, comments))
        assert {k.dotted.split(".")[0] for k in keys} == {f.name for f in dataclasses.fields(cls)}
        unexplained = [k.dotted for k in keys if not k.text.strip()]
        assert not unexplained, f"{title}: explain these keys in a shipped config's comment: {unexplained}"
    page = reference.config_reference()
    assert "| `train.steps` | int | `1000000` |" in page  # the dataclass default, not a config's value
    assert "| `loss.d_augment` |" in page and "| **`quality.judge`** | section |" in page
    assert "| `ingest.labels` | str or null | `sample` |" in page  # Optional[...] read as YAML would


def test_yaml_comments_follow_nesting_and_continuation_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("# header: nobody's comment\n"
                    "model:            # the networks\n"
                    "  dim: 64         # channels\n"
                    "                  # doubled per downsampling\n"
                    "  pad: reflect\n"
                    "loss:\n"
                    "  dim: 3          # not model.dim\n"
                    "top: 1            # a # inside the comment\n")
    assert reference.yaml_comments(path) == {
        "model": "the networks", "model.dim": "channels doubled per downsampling",
        "loss.dim": "not model.dim", "top": "a # inside the comment"}


def test_cli_reference_lists_every_flag_of_every_command():
    page = reference.cli_reference()
    for title, parser in reference.cli_parsers():
        assert f"## `{title}`" in page
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            for flag in action.option_strings:
                assert f"`{flag}`" in page, f"{title}: {flag} missing from the CLI reference"


def test_readme_is_short_usage_first_and_points_at_the_docs():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    headings = re.findall(r"^## (.+)$", readme, flags=re.M)
    assert headings.index("Results") > headings.index("Quick start")
    for command in ("bash pipelines/run_default.sh", "bash tests/run.sh",
                    "--index-url https://download.pytorch.org/whl/cpu", "xraymunit.Translator.from_checkpoint"):
        assert command in readme
    linked = {t.split("#")[0] for t in _links(readme)}
    for page in ("docs/getting-started.md", "docs/tutorial.md", "docs/library.md", "docs/reference/config.md",
                 "docs/reference/cli.md", "docs/reference/api.md", "docs/guarantees.md", "docs/faq.md",
                 "docs/results.md"):
        assert page in linked, f"README does not link {page}"


def test_relative_links_resolve_outside_the_site():
    """README and the top-level files are read on a forge or unpacked, not only on the site."""
    for name in ("README.md", "CHANGELOG.md", "CONTRIBUTING.md"):
        for target in _links((REPO / name).read_text()):
            assert (REPO / target.split("#")[0]).exists(), f"{name}: broken link {target}"


def test_the_site_links_only_pages_it_has():
    """Every relative link of a docs page names a docs page or a file the hooks add (results/, ...)."""
    spec = importlib.util.spec_from_file_location("docs_hooks", REPO / "docs" / "_tools" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    outside = {**hooks.outside_files(), **dict.fromkeys(hooks.notebooks.pages())}
    docs = REPO / "docs"
    site = {p.relative_to(docs).as_posix() for p in docs.rglob("*.md") if "_tools" not in p.parts} | set(outside)
    for page in docs.rglob("*.md"):
        here = page.relative_to(docs).parent
        for target in _links(page.read_text()):
            resolved = os.path.normpath((here / target.split("#")[0]).as_posix())
            assert resolved in site, f"{page.relative_to(REPO)}: link {target} names no page of the site"


def test_citation_cff_is_cff_1_2_and_cites_munit():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert {"message", "title", "authors"} <= set(cff) and cff["authors"]
    from xraymunit import __version__
    assert cff["version"] == __version__
    munit = next(r for r in cff["references"] if "Multimodal Unsupervised" in r["title"])
    assert munit["year"] == 2018 and munit["authors"][0]["family-names"] == "Huang"


def test_changelog_names_the_package_version():
    from xraymunit import __version__
    assert re.search(rf"^## {re.escape(__version__)}\b", (REPO / "CHANGELOG.md").read_text(), flags=re.M)


def test_notebook_pages_show_code_text_figures_and_errors():
    """A notebook page carries every cell and every kind of output a run leaves (built here)."""
    import nbformat.v4 as v4

    sys.path.insert(0, str(REPO / "docs" / "_tools"))
    import notebooks

    nb = v4.new_notebook(cells=[
        v4.new_markdown_cell("# Title\n\nIntro."),
        v4.new_code_cell("print('hi')\n```x```", outputs=[
            v4.new_output("stream", name="stdout", text="hi\n"),
            v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=\n", "text/plain": "<Figure>"}),
            v4.new_output("execute_result", data={"text/plain": "   a  b\n0  1  2"}, execution_count=1),
            v4.new_output("error", ename="ValueError", evalue="bad", traceback=[])]),
        v4.new_markdown_cell("Closing words.")])
    page = notebooks.render(nb, "notebooks/x.ipynb")
    assert page.startswith("# Title\n\nIntro.\n\n*Notebook `notebooks/x.ipynb`*\n")
    assert "````python\nprint('hi')\n```x```\n````" in page  # a fence inside code gets a longer fence
    assert "```text\nhi\n```" in page and "```text\n   a  b\n0  1  2\n```" in page
    assert '<img alt="figure" src="data:image/png;base64,iVBORw0KGgo=">' in page and "<Figure>" not in page
    assert "```text\nValueError: bad\n```" in page and page.rstrip().endswith("Closing words.")
    assert "without outputs" not in page  # an executed notebook is not labelled as stored
    stored = v4.new_notebook(cells=[v4.new_markdown_cell("# T"), v4.new_code_cell("1")])
    assert "without outputs" in notebooks.render(stored, "notebooks/t.ipynb")


def test_every_notebook_has_a_page(monkeypatch):
    sys.path.insert(0, str(REPO / "docs" / "_tools"))
    import notebooks

    monkeypatch.delenv("XRAYMUNIT_DOCS_RUN", raising=False)
    pages = notebooks.pages()  # the stored notebooks, not executed
    assert set(pages) == {f"notebooks/{p.stem}.md" for p in (REPO / "notebooks").glob("*.ipynb")}
    nav = (REPO / "mkdocs.yml").read_text()
    assert all(uri in nav for uri in pages)
