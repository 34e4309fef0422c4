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
CUDA_SOURCES := $(wildcard extensions/csrc/*.cu)
CHAPTERS := $(sort $(wildcard chapters/[0-9][0-9]_*.py))
NOTEBOOKS := $(CHAPTERS:.py=.ipynb)
NVCC := $(shell command -v nvcc 2>/dev/null)
NVCC_OBJECTS := $(CUDA_SOURCES:extensions/csrc/%.cu=build/nvcc/%.o)

.PHONY: help setup test test-python test-chapters cuda-check book lab bench fuzz sanitize clean

help:
	@echo "make test    set up, compile the CUDA sources, run every test and every chapter"
	@echo "make book    set up, execute every chapter into build/chapters (notebooks, HTML, figures)"
	@echo "make lab     set up, open the chapters in JupyterLab"
	@echo "make bench   run the benchmarks in benchmarks/"
	@echo "make fuzz    run the property-based tests with many examples"
	@echo "make sanitize  build lib3dr._C with AddressSanitizer + UBSan, run the C++-facing tests"

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

# CI has nvcc but no GPU: compiling every .cu here keeps CUDA code that does not build from landing.
build/nvcc/%.o: extensions/csrc/%.cu extensions/csrc/*.h
	@mkdir -p $(@D)
	$(NVCC) -std=c++17 -O3 -fmad=false -arch=sm_90 -Iextensions/csrc -c $< -o $@

cuda-check:
ifeq ($(NVCC),)
	@echo "nvcc not found: skipping the CUDA compile check"
else
	@$(MAKE) --no-print-directory $(NVCC_OBJECTS)
	@echo "CUDA compile check: $(words $(NVCC_OBJECTS)) file(s) compile with nvcc"
endif

chapters/%.ipynb: chapters/%.py $(INSTALL_STAMP)
	$(ENV)/bin/jupytext --to ipynb --update-metadata '{"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}' $< -o $@

test-python: setup
	$(PY) -m pytest tests/ -q

test-chapters: setup $(NOTEBOOKS)
ifeq ($(strip $(CHAPTERS)),)
	@echo "no chapters yet: nothing for nbval to run"
else
	$(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=600 -p no:cacheprovider $(NOTEBOOKS)
endif

test: cuda-check test-python test-chapters

book: setup $(NOTEBOOKS)
	@mkdir -p build/chapters
	cd build/chapters && for nb in $(NOTEBOOKS:chapters/%=%); do \
	  $(ENV)/bin/jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=600 \
	    --output-dir . ../../chapters/$$nb && \
	  $(ENV)/bin/jupyter nbconvert --to html --output-dir . $$nb || exit 1; \
	done
	@echo "book written to build/chapters/"

lab: setup $(NOTEBOOKS)
	$(ENV)/bin/jupyter lab chapters/

bench: setup
	$(PY) benchmarks/bench_rasterizer.py
	$(PY) benchmarks/bench_pose.py
	$(PY) benchmarks/bench_pose.py --tracking

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
	  $(PY) -m pytest -q -p no:cacheprovider tests/test_rasterizer.py tests/test_fuzz.py tests/test_renderer.py; \
	  status=$$?; $(PY) -m pip install --no-build-isolation --no-deps -e . -q; exit $$status

clean:
	rm -rf build lib3dr/_C*.so chapters/*.ipynb
