# descentlab: `make demo` sets up .venv with what the demo needs and runs it; `make test` adds the
# dev tools and runs ruff and the tests; `make docs` builds the API reference (strict: no warnings).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_PIN := torch==2.13.0
SITE := runs/site

# One stamp per install step, so that `make demo` then `make test` installs only what is missing.
TORCH_STAMP := $(VENV)/.installed-torch
RUNTIME_STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
DOCS_STAMP := $(VENV)/.installed-docs
BENCH_STAMP := $(VENV)/.installed-bench
PLAYGROUND_STAMP := $(VENV)/.installed-playground

.PHONY: demo test lint docs bench playground clean setup

setup: $(RUNTIME_STAMP)

# torch is pinned and installed first, and pinned again in every later step on the same command
# line, so nothing can pull another (CUDA) build.
$(TORCH_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH_PIN)"
	touch $@

# the package and its runtime dependencies: all the demo needs
$(RUNTIME_STAMP): pyproject.toml $(TORCH_STAMP)
	$(PIP) install --quiet -e . "$(TORCH_PIN)"
	touch $@

$(DEV_STAMP): $(RUNTIME_STAMP)
	$(PIP) install --quiet -e ".[dev]" "$(TORCH_PIN)"
	touch $@

$(DOCS_STAMP): $(RUNTIME_STAMP)
	$(PIP) install --quiet -e ".[docs]" "$(TORCH_PIN)"
	touch $@

# the reference packages (comparisons in the benchmark) without their dependencies: they cannot pull
# a torch. heavyball's one other dependency, opt-einsum, has none.
$(BENCH_STAMP): $(RUNTIME_STAMP)
	$(PIP) install --quiet -e ".[bench]" "$(TORCH_PIN)"
	$(PIP) install --quiet --no-deps pytorch-optimizer==4.1.0 schedulefree==1.4.1 prodigyopt==1.1.2 \
		heavyball==3.2.1 opt-einsum
	touch $@

demo: $(RUNTIME_STAMP)
	$(VENV)/bin/descentlab demo --out runs/demo

# the live playground: the `playground` extra (Starlette, uvicorn; neither depends on torch), then the
# server on 127.0.0.1:8765 with the page opened in the default browser (Ctrl-C stops it)
$(PLAYGROUND_STAMP): $(RUNTIME_STAMP)
	$(PIP) install --quiet -e ".[playground]" "$(TORCH_PIN)"
	touch $@

playground: $(PLAYGROUND_STAMP)
	$(VENV)/bin/descentlab playground --open

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

test: $(DEV_STAMP) lint
	$(VENV)/bin/pytest

# the API reference, from the docstrings (mkdocs.yml, docs/): any warning fails the build
docs: $(DOCS_STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir $(SITE)

bench: $(BENCH_STAMP)
	$(PY) benchmarks/step_time.py

clean:
	rm -rf $(VENV) runs site .pytest_cache .ruff_cache .hypothesis
