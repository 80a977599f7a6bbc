"""Build hook only (metadata lives in setup.cfg): ship the repository's configs/ and notebooks/ inside the wheel.

configs/*.yaml and notebooks/*.ipynb stay the one copy in git; at build time they are copied to
xraymunit/configs/ and xraymunit/notebooks/ in the build folder, so `xraymunit train --config
munit_tiny_cpu` works after a plain `pip install .` (xraymunit.config.find looks there first, then
in the repository's configs/) and an installed user finds the notebooks next to the package.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = {"configs": "*.yaml", "notebooks": "*.ipynb"}  # repository folder -> files copied into xraymunit/


class build_py_with_configs(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the repository's folders directly
        for folder, pattern in SHIPPED.items():
            target = Path(self.build_lib) / "xraymunit" / folder
            target.mkdir(parents=True, exist_ok=True)
            for path in sorted((HERE / folder).glob(pattern)):
                self.copy_file(str(path), str(target / path.name))


setup(cmdclass={"build_py": build_py_with_configs})
