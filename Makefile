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
# (tests/test_cuda_emulation.py, a few minutes with its build); DEEPRNN_FAST_EMULATION_TESTS=0 skips them.
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

# The test files run in one process per core (pytest-xdist; a file's tests stay together, in order, in one process);
# TEST_WORKERS=0 runs them all in this process.
TEST_WORKERS ?= auto
test: $(BIN)/.built
	$(BIN)/python -m pytest tests -n $(TEST_WORKERS) --dist loadfile $(ARGS)

# The benchmarks (benchmarks/README.md): every case on every core, then the training steps (and the peak probe) on
# one thread for the thread-scaling table, then the report of both. PyTorch, whose RNNs are peers, is setup.py's
# optional `bench` extra: installed once here where the package index answers; where it does not, its cases skip.
BENCH_TORCH := torch==2.13.0
BENCH_RESULTS := benchmarks/results

$(BIN)/.bench: $(BIN)/.requirements
	$(BIN)/python -m pip install --quiet "$(BENCH_TORCH)" || \
		echo "note: $(BENCH_TORCH) could not be installed: the PyTorch peers will be skipped"
	touch $@

benchmark: $(BIN)/.built $(BIN)/.bench
	mkdir -p $(BENCH_RESULTS)
	$(BIN)/python -m pytest benchmarks --benchmark-json=$(BENCH_RESULTS)/cpu.json $(ARGS)
	DEEPRNN_FAST_BENCH_THREADS=1 $(BIN)/python -m pytest benchmarks/test_bench_train_step.py \
		benchmarks/test_bench_peak.py --benchmark-json=$(BENCH_RESULTS)/cpu-1-thread.json $(ARGS)
	$(BIN)/python benchmarks/report.py $(BENCH_RESULTS)/cpu.json $(BENCH_RESULTS)/cpu-1-thread.json

clean:
	rm -rf build deeprnn_fast/*.so deeprnn_fast/_build_info.json $(BIN)/.built
