"""A built wheel holds the whole project: every package, the compiled extension, and nothing that
needs the source checkout. It is built, installed into a fresh virtual environment, and used
from outside the repository: the cow rendered, and one chapter's helpers run.

Building and installing take minutes, so this runs when LIB3DR_WHEEL_TEST=1 (`make test` sets it).
"""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(os.environ.get("LIB3DR_WHEEL_TEST") != "1",
                                reason="builds and installs a wheel: set LIB3DR_WHEEL_TEST=1 (make test does)")

USE_FROM_OUTSIDE = """
import sys
import torch
import lib3dr
from lib3dr.io import load_objs_as_meshes
from lib3dr.renderer import (FoVPerspectiveCameras, HardPhongShader, MeshRasterizer, MeshRenderer,
                             PointLights, RasterizationSettings, look_at_view_transform)

assert "site-packages" in lib3dr.__file__, lib3dr.__file__
assert "cpu" in lib3dr.backends(), lib3dr.backends()
assert "matplotlib" not in sys.modules, "import lib3dr imported matplotlib"
mesh = load_objs_as_meshes([sys.argv[1]])
R, T = look_at_view_transform(2.7, 10, 150)
cameras = FoVPerspectiveCameras(R=R, T=T)
renderer = MeshRenderer(MeshRasterizer(cameras, RasterizationSettings(image_size=64)),
                        HardPhongShader(cameras=cameras, lights=PointLights(location=((2.0, 2.0, -2.0),))))
image = renderer(mesh)
assert image.shape == (1, 64, 64, 4) and image[0, 32, 32, 3] == 1 and image[0, 0, 0, 3] == 0

from lib3dr_book import paths, plotting
from lib3dr_book.exercises import chapter01
figure = plotting.image_grid([image[0, ..., :3]], titles=["cow"])
print("saved", plotting.save_figure(figure, "wheel_test_cow"))
print("data", paths.data_path("teapot.obj"))
print("chapter01 helpers:", [name for name in dir(chapter01) if not name.startswith("_")][:3])
print("ok")
"""


def run(*args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_wheel_installs_and_works_outside_the_checkout(tmp_path):
    run(sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q",
        "-w", str(tmp_path / "dist"), str(ROOT), env={**os.environ, "LIB3DR_CPU_ONLY": "1"})
    wheel, = (tmp_path / "dist").glob("lib3dr-*.whl")
    packaged = {Path(name).parent.as_posix() for name in zipfile.ZipFile(wheel).namelist()
                if name.endswith(".py")}
    in_source = {path.parent.relative_to(ROOT).as_posix()
                 for package in ("lib3dr", "lib3dr_book") for path in (ROOT / package).rglob("__init__.py")}
    assert in_source <= packaged, f"packages missing from the wheel: {sorted(in_source - packaged)}"
    assert any(Path(name).name.startswith("_C") for name in zipfile.ZipFile(wheel).namelist())

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    python = str(venv / "bin" / "python")
    import torch
    run(python, "-m", "pip", "install", "-q", f"torch=={torch.__version__.split('+')[0]}", str(wheel))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    output = run(python, "-c", USE_FROM_OUTSIDE, str(ROOT / "data" / "cow_mesh" / "cow.obj"),
                 cwd=outside, env={**os.environ, "LIB3DR_BOOK_ROOT": str(ROOT), "PYTHONPATH": ""})
    assert output.strip().endswith("ok"), output
