"""Builds lib3dr._C, the compiled kernels, against the torch installed in the environment.

The C++ sources are always built. The CUDA sources are added when the installed torch has CUDA and
nvcc is found; FORCE_CUDA=1 insists on them (and fails if they cannot be built), LIB3DR_CPU_ONLY=1
leaves them out.
"""
import glob
import os
import sys

from setuptools import setup

SOURCES = os.path.join("extensions", "csrc")


def get_extensions():
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, CppExtension, CUDAExtension

    cpu_only = os.environ.get("LIB3DR_CPU_ONLY", "0") == "1"
    force_cuda = os.environ.get("FORCE_CUDA", "0") == "1"
    if force_cuda and cpu_only:
        raise RuntimeError("FORCE_CUDA=1 and LIB3DR_CPU_ONLY=1 contradict each other")
    cuda_possible = torch.version.cuda is not None and CUDA_HOME is not None
    if force_cuda and not cuda_possible:
        raise RuntimeError(
            "FORCE_CUDA=1 needs a CUDA build of torch and nvcc "
            f"(torch.version.cuda={torch.version.cuda}, CUDA_HOME={CUDA_HOME})"
        )
    with_cuda = cuda_possible and not cpu_only

    sources = sorted(glob.glob(os.path.join(SOURCES, "*.cpp")))
    # -fno-trapping-math: the kernels never enable floating-point exceptions, and without it GCC
    # will not vectorize the selections of the per-row coverage test. Results are unchanged.
    flags = {"cxx": ["-O3", "-std=c++17", "-fno-trapping-math"]}
    # The CPU kernels run on torch's OpenMP threads where torch has them (its Linux wheels bundle
    # libgomp, which the extension then shares); elsewhere on threads of their own.
    link_args = []
    if sys.platform.startswith("linux"):
        flags["cxx"].append("-fopenmp")
        link_args.append("-fopenmp")
    if os.environ.get("LIB3DR_SANITIZE") == "1":  # make sanitize
        sanitizers = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
        flags["cxx"] = ["-O1", "-g", "-std=c++17"] + sanitizers
        return [CppExtension("lib3dr._C", sources, include_dirs=[os.path.abspath(SOURCES)],
                             extra_compile_args=flags, extra_link_args=sanitizers)]
    if not with_cuda:
        return [CppExtension("lib3dr._C", sources, include_dirs=[os.path.abspath(SOURCES)],
                             extra_compile_args=flags, extra_link_args=link_args)]
    sources += sorted(glob.glob(os.path.join(SOURCES, "*.cu")))
    flags["cxx"].append("-DWITH_CUDA")
    # No fused multiply-adds: the GPU must choose exactly the faces the CPU and the reference choose.
    flags["nvcc"] = ["-O3", "-std=c++17", "-DWITH_CUDA", "-fmad=false"]
    return [CUDAExtension("lib3dr._C", sources, include_dirs=[os.path.abspath(SOURCES)],
                          extra_compile_args=flags, extra_link_args=link_args)]


def build_ext_class():
    from torch.utils.cpp_extension import BuildExtension

    return BuildExtension.with_options(no_python_abi_suffix=False)


setup(ext_modules=get_extensions(), cmdclass={"build_ext": build_ext_class()})
