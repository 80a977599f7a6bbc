"""Build hook only (metadata lives in setup.cfg): ship the repository's configs/ inside the wheel.

configs/*.yaml stays the one copy in git; at build time it is copied to xraymunit/configs/ in the
build folder, so `xraymunit train --config munit_tiny_cpu` works after a plain `pip install .`
(xraymunit.config.find looks there first, then in the repository's configs/).
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONFIGS = Path(__file__).resolve().parent / "configs"


class build_py_with_configs(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the repository's configs/ directly
        target = Path(self.build_lib) / "xraymunit" / "configs"
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted(CONFIGS.glob("*.yaml")):
            self.copy_file(str(path), str(target / path.name))


setup(cmdclass={"build_py": build_py_with_configs})
