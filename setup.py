"""Builds lib3dr._C, the compiled kernels, against the torch installed in the environment.

The C++ sources are always built. The CUDA sources are added when the installed torch has CUDA,
nvcc is found and a GPU is visible (PyTorch3D's rule); FORCE_CUDA=1 insists on them without a GPU
(and fails if they cannot be built), LIB3DR_CPU_ONLY=1 leaves them out. Other switches:
LIB3DR_BASELINE_ONLY=1 compiles only the baseline copy of the CPU kernels' row loops (what
machines without AVX2 run), LIB3DR_SANITIZE=1 builds with AddressSanitizer and UBSan.
"""
import glob
import os
import re
import shutil
import subprocess
import sys

from setuptools import setup

SOURCES = os.path.join("extensions", "csrc")
# Architectures when building CUDA for no particular GPU: what CUDA 13 still supports, from Turing
# to Blackwell, with PTX for later ones. TORCH_CUDA_ARCH_LIST overrides it.
DEFAULT_CUDA_ARCHS = "7.5;8.0;8.6;8.9;9.0;10.0;12.0+PTX"


def say(message):
    print(f"lib3dr setup: {message}", file=sys.stderr)


def find_cuda_toolkit():
    """The CUDA toolkit's folder: $CUDA_HOME, else the one the nvcc on the PATH really runs from.

    torch takes the folder above the first ``nvcc`` on the PATH, which is wrong when that is a
    wrapper script or a link outside the toolkit; nvcc's dry run names its own folder (``TOP``).
    """
    if os.environ.get("CUDA_HOME"):
        return os.environ["CUDA_HOME"]
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return "/usr/local/cuda" if os.path.exists("/usr/local/cuda/bin/nvcc") else None
    try:
        dry_run = subprocess.run([nvcc, "--dryrun", "-c", "-x", "cu", os.devnull, "-o", os.devnull],
                                 capture_output=True, text=True, timeout=60).stderr
        top = re.search(r"^#\$ TOP=(.+)$", dry_run, re.MULTILINE)
    except (OSError, subprocess.SubprocessError):
        top = None
    return os.path.realpath(top.group(1).strip()) if top else os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))


def compiler_is_clang():
    compiler = os.environ.get("CXX") or "c++"
    try:
        return "clang" in subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    except OSError:
        return False


def choose_cuda(torch):
    """Whether to build the CUDA kernels, and (when it does) the toolkit it builds with."""
    cpu_only = os.environ.get("LIB3DR_CPU_ONLY", "0") == "1"
    force_cuda = os.environ.get("FORCE_CUDA", "0") == "1"
    if force_cuda and cpu_only:
        raise RuntimeError("FORCE_CUDA=1 and LIB3DR_CPU_ONLY=1 contradict each other")
    if cpu_only:
        say("LIB3DR_CPU_ONLY=1: building the CPU kernels only")
        return None
    if torch.version.cuda is None:
        if force_cuda:
            raise RuntimeError(f"FORCE_CUDA=1 needs a CUDA build of torch; this one is {torch.__version__}")
        return None
    toolkit = find_cuda_toolkit()
    if toolkit is None or not os.path.exists(os.path.join(toolkit, "bin", "nvcc")):
        if force_cuda:
            raise RuntimeError("FORCE_CUDA=1 needs nvcc: none found on the PATH or at $CUDA_HOME")
        say(f"torch has CUDA {torch.version.cuda} but no nvcc was found: building the CPU kernels only")
        return None
    if not force_cuda and not torch.cuda.is_available():
        say(f"torch has CUDA {torch.version.cuda} and nvcc is at {toolkit}, but no GPU is visible: "
            "building the CPU kernels only (FORCE_CUDA=1 builds the CUDA kernels anyway)")
        return None
    return toolkit


def get_extensions():
    import torch

    sources = sorted(glob.glob(os.path.join(SOURCES, "*.cpp")))
    include_dirs = [os.path.abspath(SOURCES)]
    # -fno-trapping-math: the kernels never enable floating-point exceptions, and without it GCC
    # will not vectorize the selections of the per-row coverage test. Results are unchanged.
    # No -std: torch adds the standard its headers need (C++20 for torch 2.13, C++17 before).
    # -ffp-contract=off, like nvcc's -fmad=false below: no fused multiply-adds (GCC on ARM and
    # Clang would contract a*b+c), so every machine chooses exactly the faces the reference does.
    flags = {"cxx": ["-O3", "-fno-trapping-math", "-ffp-contract=off"]}
    link_args = []
    if os.environ.get("LIB3DR_BASELINE_ONLY") == "1":
        say("LIB3DR_BASELINE_ONLY=1: the row loops are compiled for the baseline instruction set only")
        flags["cxx"].append("-DLIB3DR_BASELINE_ONLY")
    # The CPU kernels run on torch's OpenMP threads where torch has them (its Linux wheels bundle
    # GCC's libgomp, which the extension then shares). Clang would link its own libomp beside it,
    # so a Clang build runs the kernels on threads of their own, as on macOS.
    if sys.platform.startswith("linux") and not compiler_is_clang():
        flags["cxx"].append("-fopenmp")
        link_args.append("-fopenmp")

    from torch.utils import cpp_extension

    if os.environ.get("LIB3DR_SANITIZE") == "1":  # make sanitize
        sanitizers = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
        flags["cxx"] = ["-O1", "-g"] + sanitizers
        return [cpp_extension.CppExtension("lib3dr._C", sources, include_dirs=include_dirs,
                                           extra_compile_args=flags, extra_link_args=sanitizers)]
    toolkit = choose_cuda(torch)
    if toolkit is None:
        return [cpp_extension.CppExtension("lib3dr._C", sources, include_dirs=include_dirs,
                                           extra_compile_args=flags, extra_link_args=link_args)]
    # torch.utils.cpp_extension read CUDA_HOME when it was imported: point it at the real toolkit.
    os.environ["CUDA_HOME"] = cpp_extension.CUDA_HOME = toolkit
    if not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            os.environ["TORCH_CUDA_ARCH_LIST"] = f"{major}.{minor}"
        else:
            os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_CUDA_ARCHS
    say(f"building the CUDA kernels with the toolkit at {toolkit} for architectures "
        f"{os.environ['TORCH_CUDA_ARCH_LIST']} (set TORCH_CUDA_ARCH_LIST to change them, "
        "LIB3DR_CPU_ONLY=1 to skip CUDA)")
    sources += sorted(glob.glob(os.path.join(SOURCES, "*.cu")))
    flags["cxx"].append("-DWITH_CUDA")
    # No fused multiply-adds: the GPU must choose exactly the faces the CPU and the reference choose.
    flags["nvcc"] = ["-O3", "-DWITH_CUDA", "-fmad=false"]
    return [cpp_extension.CUDAExtension("lib3dr._C", sources, include_dirs=include_dirs,
                                        extra_compile_args=flags, extra_link_args=link_args)]


def build_ext_class():
    from torch.utils.cpp_extension import BuildExtension

    return BuildExtension.with_options(no_python_abi_suffix=False)


setup(ext_modules=get_extensions(), cmdclass={"build_ext": build_ext_class()})
