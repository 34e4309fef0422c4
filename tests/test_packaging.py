"""The project's own files agree with each other: conda and pip list the same dependencies, and the
package works (on the reference kernels) when the compiled extension is missing."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _name(requirement):
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_the_pyproject_dependencies():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the files are the same under any Python
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    wanted |= {_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    with open(os.path.join(ROOT, "environment.yml")) as f:
        listed = {_name(line.strip()[2:]) for line in f
                  if line.startswith("      - ")}  # the pip: section's items
    assert listed == wanted, f"only in pyproject: {wanted - listed}, only in environment.yml: {listed - wanted}"


def test_import_without_the_extension_falls_back_to_torch():
    # A stand-in lib3dr._C that fails to import, as on a machine where the build failed.
    code = (
        "import sys, warnings, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'lib3dr._C': raise ImportError('simulated: no compiled extension')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import torch, lib3dr\n"
        "from lib3dr.utils import ico_sphere\n"
        "from lib3dr.renderer import FoVPerspectiveCameras, look_at_view_transform\n"
        "assert lib3dr.backends() == ['torch'], lib3dr.backends()\n"
        "R, T = look_at_view_transform(3, 0, 0)\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    for _ in range(2):\n"
        "        alpha = lib3dr.soft_silhouette(ico_sphere(1), FoVPerspectiveCameras(R=R, T=T),\n"
        "                                       image_size=16, faces_per_pixel=20, sigma=1e-3)\n"
        "messages = [str(w.message) for w in caught if 'lib3dr._C' in str(w.message)]\n"
        "assert len(messages) == 1 and 'simulated' in messages[0] and 'make test' in messages[0], messages\n"
        "assert alpha.shape == (1, 16, 16) and alpha[0, 8, 8] > 0.9 and alpha[0, 0, 0] == 0\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
