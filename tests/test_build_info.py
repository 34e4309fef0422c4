"""The build of lib3dr._C that the tests run is the one the Makefile meant to test.

`make test` runs the kernel tests again against other builds (build/variants/): these checks make
sure that such a run really imported that build, not the main one, and that the build is what its
name says (the baseline-only row loops, the Clang compiler).
"""
import os
from pathlib import Path

import pytest

import lib3dr
from lib3dr import _backend

pytestmark = pytest.mark.skipif(_backend._C is None, reason="lib3dr._C is not built")


def test_build_info_describes_the_build():
    info = _backend._C.build_info()
    assert info["row_kernels"] in ("avx2 and baseline, chosen at load time", "baseline only")
    assert info["threads"] in ("OpenMP (torch's)", "std::thread")
    assert info["cuda"] == _backend._C.has_cuda()
    assert info["compiler"]


def test_the_variant_under_test_is_the_one_imported():
    expected_path = os.environ.get("LIB3DR_EXPECT_PATH")
    if expected_path:
        assert Path(lib3dr.__file__).resolve().is_relative_to(Path(expected_path).resolve())
    info = _backend._C.build_info()
    if os.environ.get("LIB3DR_EXPECT_ROW_KERNELS"):
        assert info["row_kernels"] == os.environ["LIB3DR_EXPECT_ROW_KERNELS"]
    if os.environ.get("LIB3DR_EXPECT_COMPILER"):
        assert os.environ["LIB3DR_EXPECT_COMPILER"] in info["compiler"].lower()
