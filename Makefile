# The two quick-start commands: `make train` (the book's experiment) and `make test` (the whole test suite).
# Both create .venv with everything installed and the op library built on first use, and rebuild the library
# when a C++/CUDA source changes.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SOURCES := $(shell find csrc -type f) setup.py
# Where the book comes from when it is not downloaded (these machines are offline): see README.md.
DEEPRNN_FAST_DATA ?= $(wildcard ../shared/data/timemachine.txt)
export DEEPRNN_FAST_DATA
# The CUDA kernels also run in the tests, compiled as C++ against a CPU emulation of the CUDA runtime
# (tests/test_cuda_emulation.py, about a minute); DEEPRNN_FAST_EMULATION_TESTS=0 skips them.
DEEPRNN_FAST_EMULATION_TESTS ?= 1
export DEEPRNN_FAST_EMULATION_TESTS

.PHONY: train test benchmark clean

$(BIN)/.requirements: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(BIN)/.built: $(BIN)/.requirements $(SOURCES)
	$(BIN)/python -m pip install --quiet --no-build-isolation --no-deps -e .
	touch $@

train: $(BIN)/.built
	$(BIN)/deeprnn-fast train $(ARGS)

test: $(BIN)/.built
	$(BIN)/python -m pytest tests $(ARGS)

benchmark: $(BIN)/.built
	mkdir -p benchmarks/results
	$(BIN)/python -m pytest benchmarks --benchmark-json=benchmarks/results/cpu.json $(ARGS)
	$(BIN)/python benchmarks/report.py benchmarks/results/cpu.json

clean:
	rm -rf build deeprnn_fast/*.so deeprnn_fast/_build_info.json $(BIN)/.built
