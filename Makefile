# ccnn developer commands. `make demo` runs the main job, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python: the active virtual/conda environment when it already has torch; otherwise ./.venv,
# created on demand with the CPU build of torch (no multi-GB CUDA download).
ACTIVE_PY := $(shell [ -n "$$VIRTUAL_ENV$$CONDA_PREFIX" ] && python3 -c 'import torch' 2>/dev/null && command -v python3)
PYTHON ?= $(if $(ACTIVE_PY),$(ACTIVE_PY),$(CURDIR)/.venv/bin/python)
TORCH_SPEC ?= torch==2.13.0
CMAKE ?= cmake
CMAKE_BUILD_DIR ?= build-cmake
SANITIZE_BUILD_DIR ?= build-sanitize
REFERENCE_AD3 ?= $(HOME)/.cache/ccnn/reference-ad3
# The toolkit root (an `nvcc` on the PATH may be a wrapper script outside it).
CUDA_HOME ?= $(shell for d in /usr/local/cuda /usr/local/cuda-*; do [ -x $$d/bin/nvcc ] && echo $$d; done | tail -n 1)
NVCC ?= $(if $(CUDA_HOME),$(CUDA_HOME)/bin/nvcc,$(shell command -v nvcc))
CUDA_ARCH_FLAGS ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
STAMP := build/.installed

.PHONY: help venv install build test pytest cpp-test sanitize cuda-check decoder-check reference-check demo bench clean

help:
	@echo "make demo        run the main job (trains and compares the models on built-in synthetic data)"
	@echo "make test        build everything and run every test (C++ via ctest, Python via pytest)"
	@echo "make build       rebuild the extension in place after editing csrc/"
	@echo "make sanitize    build the C++ core and its tests with ASan + UBSan (build-sanitize/) and run them"
	@echo "make cuda-check  compile every CUDA source with nvcc (sm_80, sm_90); needs no GPU"
	@echo "make decoder-check  pip install ./decoder (the decoder alone) into a fresh venv without torch and test it"
	@echo "make reference-check  build the reference AD3 (PyPI ad3 2.2.1) and check the decoder against it side by side"
	@echo "make bench       run the benchmarks, results under benchmarks/results/"

venv:
	@if [ "$(PYTHON)" = "$(CURDIR)/.venv/bin/python" ] && [ ! -x .venv/bin/python ]; then \
		echo "creating .venv"; python3 -m venv .venv; fi

install: $(STAMP)
$(STAMP): pyproject.toml setup.py | venv
	$(PYTHON) -c 'import torch' 2>/dev/null || $(PYTHON) -m pip install "$(TORCH_SPEC)"
	$(PYTHON) -m pip install "setuptools>=77" wheel "pybind11>=2.11" ninja
	$(PYTHON) -m pip install --no-build-isolation -e ".[test]"
	@mkdir -p build && touch build/.ext-built $@

# Rebuilds the extension in place when a source changed since the last build.
build: install
	@if [ -n "$$(find csrc setup.py -newer build/.ext-built 2>/dev/null | head -n 1)" ]; then \
		$(PYTHON) setup.py -q build_ext --inplace && touch build/.ext-built; fi

pytest: build
	$(PYTHON) -m pytest

cpp-test:
	$(CMAKE) -S . -B $(CMAKE_BUILD_DIR) -DCMAKE_BUILD_TYPE=Release
	$(CMAKE) --build $(CMAKE_BUILD_DIR) -j 2
	ctest --test-dir $(CMAKE_BUILD_DIR) --output-on-failure

test: cpp-test pytest

# The torch-free C++ core and its ctests under AddressSanitizer + UndefinedBehaviorSanitizer
# (-DCCNN_SANITIZE=ON), in a build folder of its own; any finding fails the test. Run by CI.
sanitize:
	$(CMAKE) -S . -B $(SANITIZE_BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCCNN_SANITIZE=ON
	$(CMAKE) --build $(SANITIZE_BUILD_DIR) -j 2
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --test-dir $(SANITIZE_BUILD_DIR) --output-on-failure

# Compiles the .cu kernels (plain CUDA C++) for every default target, and checks the torch-side
# CUDA launchers (*_cuda.cpp) against the installed torch headers, so CUDA code cannot rot on
# machines without a GPU (a CPU-only torch lacks c10's generated cuda_cmake_macros.h, hence
# C10_CUDA_NO_CMAKE_CONFIGURE_FILE; torch's headers need C++20).
cuda-check: install
	@[ -n "$(NVCC)" ] || { echo "cuda-check: nvcc not found (set NVCC=/path/to/nvcc)"; exit 1; }
	@set -e; \
	for f in $$(find csrc -name '*.cu' | sort); do \
		echo "nvcc $$f"; $(NVCC) -std=c++17 -Icsrc $(CUDA_ARCH_FLAGS) -c $$f -o /dev/null; done; \
	inc=$$($(PYTHON) -c 'from torch.utils.cpp_extension import include_paths; print(" ".join("-I"+p for p in include_paths()))'); \
	for f in $$(find csrc -name '*_cuda.cpp' | sort); do \
		echo "c++ -fsyntax-only $$f"; c++ -std=c++20 -fsyntax-only -DCCNN_WITH_CUDA=1 \
			-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE -Icsrc $$inc -I$(CUDA_HOME)/include $$f; done

# The torch-free decoder distribution (decoder/): installed into a fresh venv with numpy only.
decoder-check:
	$(PYTHON) -m pytest -q tests/test_decoder_without_torch.py

# The decoder against the reference AD3 (PyPI ad3 2.2.1, built once into REFERENCE_AD3 by
# benchmarks/install_reference_ad3.sh): the tests that compare the two packages, then one minute
# of random graphs judged by enumeration and scipy's LP (fixed seeds, not those of the committed
# runs). Skipped, saying so, only when PyPI cannot be reached; a failed build fails.
reference-check: build
	@set -e; \
	if [ ! -d "$(REFERENCE_AD3)/ad3" ]; then \
		sdist=$$(mktemp -d); trap 'rm -rf '$$sdist EXIT; \
		if ! $(PYTHON) -m pip download -q --no-deps --no-binary :all: --timeout 15 --retries 0 ad3==2.2.1 -d $$sdist >/dev/null 2>&1; then \
			echo "reference-check skipped: the ad3 2.2.1 sdist could not be downloaded from PyPI"; exit 0; fi; \
		CCNN_AD3_SDIST=$$sdist/ad3-2.2.1.tar.gz PYTHON=$(PYTHON) bash benchmarks/install_reference_ad3.sh "$(REFERENCE_AD3)"; fi; \
	PYTHONPATH=$(REFERENCE_AD3) $(PYTHON) -m pytest -q -rs -k reference_package tests/test_ad3_compat.py; \
	PYTHONPATH=$(REFERENCE_AD3) $(PYTHON) benchmarks/compare_reference_random.py --seconds 60 --first-seed 30000000

demo: build
	$(PYTHON) -m ccnn.cli demo --out runs/demo

bench: build
	$(PYTHON) benchmarks/bench_copula.py --out benchmarks/results
	$(PYTHON) benchmarks/bench_logtable_levels.py --out benchmarks/results
	$(PYTHON) benchmarks/bench_decode.py --out benchmarks/results
	$(PYTHON) benchmarks/bench_data.py --out benchmarks/results
	$(PYTHON) benchmarks/bench_heads.py
	$(PYTHON) benchmarks/bench_train.py --out benchmarks/results
	$(PYTHON) benchmarks/bench_parser_lengths.py --out benchmarks/results
	$(PYTHON) benchmarks/bench_psdd.py --out benchmarks/results
	$(PYTHON) benchmarks/bench_simple_inference.py --out benchmarks/results
	$(PYTHON) benchmarks/bench_oracle.py --out benchmarks/results
	$(PYTHON) benchmarks/bench_general.py --out benchmarks/results  # exits 1 while a bar of issue 12 fails

clean:
	rm -rf build $(CMAKE_BUILD_DIR) $(SANITIZE_BUILD_DIR) ccnn_ext/*.so python/ccnn_decoder/*.so decoder/build decoder/*.egg-info
