"""mkdocs hooks (mkdocs.yml `hooks:`): the generated reference pages and the files that live outside docs/.

- `<!-- generated: config-reference -->` / `<!-- generated: cli-reference -->` in a page are replaced
  by reference.py's tables (read from the code at build time, never copied by hand);
- results/ (each study's summary, README and plots), CHANGELOG.md, CONTRIBUTING.md and
  xraymunit/FORMATS.md join the site under their own paths, so docs pages link to them relatively
  and the files stay where the code and the tests expect them;
- the notebooks become pages `notebooks/NAME.md` (notebooks.py; executed first when
  XRAYMUNIT_DOCS_RUN names a run folder).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import notebooks  # noqa: E402
import reference  # noqa: E402

REPO = reference.REPO
GENERATED = {
    "<!-- generated: config-reference -->": reference.config_reference,
    "<!-- generated: cli-reference -->": reference.cli_reference,
}
OUTSIDE = {  # site path -> file in the repository
    "CHANGELOG.md": REPO / "CHANGELOG.md",
    "CONTRIBUTING.md": REPO / "CONTRIBUTING.md",
    "reference/FORMATS.md": REPO / "xraymunit" / "FORMATS.md",
}
RESULT_SUFFIXES = (".md", ".png")


def outside_files() -> dict[str, Path]:
    files = dict(OUTSIDE)
    for path in sorted((REPO / "results").rglob("*")):
        if path.suffix in RESULT_SUFFIXES and path.is_file():
            files[path.relative_to(REPO).as_posix()] = path
    return files


def on_files(files, config):
    from mkdocs.structure.files import File  # here, so the file list above reads without mkdocs

    for uri, path in outside_files().items():
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    for uri, markdown in notebooks.pages().items():
        files.append(File.generated(config, uri, content=markdown))
    return files


def on_page_markdown(markdown, page, config, files):
    for marker, render in GENERATED.items():
        if marker in markdown:
            markdown = markdown.replace(marker, render())
    return markdown
