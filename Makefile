# lib3dr: `make test` and `make book` set everything up from nothing.
#
# Uses the active virtual environment (or conda environment) when there is one, else creates
# .venv. Stamps in the environment make a second run skip what is already done.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ENV := $(or $(VIRTUAL_ENV),$(CONDA_PREFIX),$(CURDIR)/.venv)
PY := $(ENV)/bin/python
TORCH_STAMP := $(ENV)/.lib3dr-torch
INSTALL_STAMP := $(ENV)/.lib3dr-install
EXT_SOURCES := $(wildcard extensions/csrc/*.h extensions/csrc/*.cpp extensions/csrc/*.cu)
PACKAGE_SOURCES := $(shell find lib3dr lib3dr_book -name '*.py')
CHAPTERS := $(sort $(wildcard chapters/[0-9][0-9]_*.py))
NOTEBOOKS := $(CHAPTERS:.py=.ipynb)
# The tests that reach the compiled kernels: run again against each build variant.
KERNEL_TESTS := tests/test_rasterizer.py tests/test_soft_blend.py tests/test_fuzz.py tests/test_hardening.py tests/test_build_info.py
NVCC := $(shell command -v nvcc 2>/dev/null)
CLANGXX := $(shell command -v clang++ 2>/dev/null)
# Another Python (oldest, newest supported), looked for on the PATH and in pyenv.
find_python = $(firstword $(wildcard $(HOME)/.pyenv/versions/$(1).*/bin/python$(1)) $(shell python$(1) -c 'import sys; print(sys.executable)' 2>/dev/null))
PYTHON_OLDEST := $(call find_python,3.10)
PYTHON_NEWEST := $(call find_python,3.13)
# The CUDA build: pip serves the CUDA build of torch on Pythons other than this machine's 3.11
# (whose local wheel is the CPU one); 9.0 (Hopper) alone keeps the build short.
CUDA_ENV := $(CURDIR)/.venvs/cuda
CUDA_ARCHS ?= 9.0

.PHONY: help setup test test-python test-chapters test-book test-variants test-cuda-build \
        test-pythons book lab bench gpu-check fuzz sanitize assignments grade clean

help:
	@echo "make test    set up, run every test and every chapter, the kernel build variants and the CUDA build"
	@echo "make book    set up, execute every chapter, write the book's site to build/book/"
	@echo "make lab     set up, open the chapters in JupyterLab"
	@echo "make bench   run the benchmarks in benchmarks/"
	@echo "make gpu-check OUT=dir  on a GPU machine: CUDA build, CUDA tests, compute-sanitizer, GPU benchmark"
	@echo "make test-pythons  the tests under the oldest and newest supported Python (3.10, 3.13)"
	@echo "make fuzz    run the property-based tests with many examples"
	@echo "make sanitize  build lib3dr._C with AddressSanitizer + UBSan, run the C++-facing tests"
	@echo "make assignments  the chapters as nbgrader assignments: build/assignments/release/ to hand out"
	@echo "make grade SUBMITTED=dir  autograde dir/<student>/<chapter>/<chapter>.ipynb into build/grades.csv"

$(PY):
	python3 -m venv $(ENV)

# --no-build-isolation in the second step: the extension must compile against this torch.
$(TORCH_STAMP): | $(PY)
	$(PY) -m pip install --upgrade pip setuptools wheel
	$(PY) -m pip install torch==2.13.0 ninja
	touch $@

$(INSTALL_STAMP): $(TORCH_STAMP) pyproject.toml setup.py $(EXT_SOURCES)
	$(PY) -m pip install --no-build-isolation -e ".[dev]"
	touch $@

setup: $(INSTALL_STAMP)

chapters/%.ipynb: chapters/%.py $(INSTALL_STAMP)
	$(ENV)/bin/jupytext --to ipynb --update-metadata '{"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}' $< -o $@

test-python: setup
	LIB3DR_WHEEL_TEST=1 $(PY) -m pytest tests/ -q

test-chapters: setup $(NOTEBOOKS)
	$(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=600 -p no:cacheprovider $(NOTEBOOKS)

# The site from the notebooks test-chapters just ran (their figures are in build/figures): every
# page renders and every link and image resolves.
test-book: setup $(NOTEBOOKS)
	$(PY) -m lib3dr_book.site --no-execute $(NOTEBOOKS)

# The kernel tests against other builds of lib3dr._C, each in build/variants/<name>/ (the package's
# Python files and that build's extension, first on PYTHONPATH): the baseline copy of the row
# loops that machines without AVX2 run, and Clang (macOS's compiler) when it is installed.
build/variants/%/lib3dr/.built: setup.py $(EXT_SOURCES) $(PACKAGE_SOURCES) | setup
	rm -rf build/variants/$* && mkdir -p build/variants/$*
	cp -r lib3dr lib3dr_book build/variants/$*/ && rm -f build/variants/$*/lib3dr/_C*.so
	$(VARIANT_ENV_$*) $(PY) setup.py -q build_ext --build-lib build/variants/$* --build-temp build/variants/$*/tmp
	touch $@
VARIANT_ENV_baseline := LIB3DR_BASELINE_ONLY=1
VARIANT_ENV_clang := CC=clang CXX=clang++ LDSHARED="clang++ -shared" LIB3DR_BASELINE_ONLY=0
VARIANT_EXPECT_baseline := LIB3DR_EXPECT_ROW_KERNELS="baseline only"
VARIANT_EXPECT_clang := LIB3DR_EXPECT_COMPILER=clang

test-variant-%: build/variants/%/lib3dr/.built
	@echo "kernel tests against the '$*' build of lib3dr._C"
	PYTHONPATH=build/variants/$* $(VARIANT_EXPECT_$*) LIB3DR_EXPECT_PATH=build/variants/$* \
	  $(ENV)/bin/pytest -q -p no:cacheprovider $(KERNEL_TESTS)

test-variants: test-variant-baseline
ifeq ($(CLANGXX),)
	@echo "clang++ not found: skipping the Clang build of lib3dr._C (apt-get install clang to run it)"
else
	@$(MAKE) --no-print-directory test-variant-clang
endif

# The whole extension with its CUDA kernels, built in a second environment with a CUDA torch
# (no GPU needed to compile and link), then the tests, which run on the CPU kernels there.
$(CUDA_ENV)/.lib3dr-torch:
	$(PYTHON_NEWEST) -m venv $(CUDA_ENV)
	$(CUDA_ENV)/bin/python -m pip install -q --upgrade pip setuptools wheel
	$(CUDA_ENV)/bin/python -m pip install -q torch==2.13.0 ninja
	touch $@

$(CUDA_ENV)/.lib3dr-install: $(CUDA_ENV)/.lib3dr-torch pyproject.toml setup.py $(EXT_SOURCES)
	FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$(CUDA_ARCHS)" $(CUDA_ENV)/bin/python -m pip install -q --no-build-isolation -e ".[dev]"
	touch $@

test-cuda-build:
ifeq ($(NVCC),)
	@echo "nvcc not found: skipping the CUDA build of lib3dr._C"
else ifeq ($(PYTHON_NEWEST),)
	@echo "no python3.13 found: skipping the CUDA build of lib3dr._C (it needs pip's CUDA torch)"
else
	@$(MAKE) --no-print-directory $(CUDA_ENV)/.lib3dr-install
	$(CUDA_ENV)/bin/python -c "import lib3dr._C as c; info = c.build_info(); assert info['cuda'], info; print('CUDA build:', info)"
	$(CUDA_ENV)/bin/python -m pytest tests/ -q -p no:cacheprovider
endif

test: test-python test-chapters test-book test-variants test-cuda-build

# The tests under the oldest and the newest Python the project supports, each in its own
# environment under .venvs/ (a fresh `make test` there, minus the chapters). .ci/run calls it.
.venvs/py%/.lib3dr-install: pyproject.toml setup.py $(EXT_SOURCES)
	$(if $(call find_python,$*),,$(error python$* not found))
	test -x .venvs/py$*/bin/python || $(call find_python,$*) -m venv .venvs/py$*
	.venvs/py$*/bin/python -m pip install -q --upgrade pip setuptools wheel
	.venvs/py$*/bin/python -m pip install -q torch==2.13.0 ninja
	.venvs/py$*/bin/python -m pip install -q --no-build-isolation -e ".[dev]"
	touch $@

# A stamp, not an intermediate file: make would delete it after the run, and the next one reinstall.
.PRECIOUS: .venvs/py%/.lib3dr-install

test-python-%: .venvs/py%/.lib3dr-install
	.venvs/py$*/bin/python -m pytest tests/ -q -p no:cacheprovider

# Where nvcc is found, make test already ran the tests under 3.13 (the CUDA build's environment).
test-pythons:
	$(if $(PYTHON_OLDEST),@$(MAKE) --no-print-directory test-python-3.10,@echo "python3.10 not found: skipping it")
ifeq ($(NVCC),)
	$(if $(PYTHON_NEWEST),@$(MAKE) --no-print-directory test-python-3.13,@echo "python3.13 not found: skipping it")
else
	@echo "python3.13: tested by make test's CUDA build (.venvs/cuda)"
endif

book: setup $(NOTEBOOKS)
	$(PY) -m lib3dr_book.site $(NOTEBOOKS)

# Jupyter refuses to start as root without --allow-root (containers, classroom images run as root).
lab: setup $(NOTEBOOKS)
	$(if $(filter 0,$(shell id -u)),@echo "running as root: starting JupyterLab with --allow-root")
	$(ENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) chapters/

bench: setup
	$(PY) benchmarks/bench_rasterizer.py
	$(PY) benchmarks/bench_pose.py
	$(PY) benchmarks/bench_pose.py --tracking

# The CUDA backend run for real, on a machine with a GPU and a CUDA torch (installs nothing; on a
# machine without a GPU it says so and exits 0). Writes a log and a table to OUT.
gpu-check:
	bash benchmarks/gpu_check.sh $(or $(OUT),build/gpu-check)

fuzz: setup
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest tests/test_fuzz.py -q -p no:cacheprovider

# Rebuilds the extension in place with the sanitizers, runs the tests that reach C++ with the
# sanitizer runtime preloaded (python itself is not instrumented), then rebuilds it normally.
SANITIZER_PRELOAD = $(shell gcc -print-file-name=libasan.so) $(shell gcc -print-file-name=libubsan.so) $(shell gcc -print-file-name=libstdc++.so)
sanitize: setup
	LIB3DR_SANITIZE=1 $(PY) -m pip install --no-build-isolation --no-deps -e . -q
	nm -D lib3dr/_C*.so | grep -q __asan_ || { echo "lib3dr._C is not instrumented"; exit 1; }
	LD_PRELOAD="$(SANITIZER_PRELOAD)" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $(PY) -m pytest -q -p no:cacheprovider tests/test_rasterizer.py tests/test_fuzz.py tests/test_renderer.py tests/test_soft_blend.py; \
	  status=$$?; $(PY) -m pip install --no-build-isolation --no-deps -e . -q; exit $$status

# Teaching with the book (README): nbgrader's course layout under build/assignments/, the
# instructor versions in source/, the student versions to hand out in release/; then grading of
# SUBMITTED/<student>/<chapter>/<chapter>.ipynb into its gradebook, feedback pages and build/grades.csv.
CELL_TIMEOUT ?= 300
assignments: setup
	$(PY) -m lib3dr_book.classroom assignments

grade: setup
	$(if $(SUBMITTED),,$(error usage: make grade SUBMITTED=<dir of student/chapter/chapter.ipynb>))
	$(PY) -m lib3dr_book.classroom grade $(SUBMITTED) --cell-timeout $(CELL_TIMEOUT)

clean:
	rm -rf build lib3dr/_C*.so chapters/*.ipynb
