# descentlab: `make demo` sets everything up and runs the main job; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean setup

setup: $(STAMP)

# torch is pinned and installed first so nothing else can pull another (CUDA) build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_PIN)
	$(PIP) install --quiet -e ".[dev]" "$(TORCH_PIN)"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/descentlab demo --out runs/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

test: $(STAMP) lint
	$(VENV)/bin/pytest

bench: $(STAMP)
	$(PIP) install --quiet --no-deps pytorch-optimizer
	$(PY) benchmarks/step_time.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
