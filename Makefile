# The two commands of the README: `make main` (install + main job) and `make test`
# (install + the documentation site in strict mode + whole test suite). Everything goes into a
# virtualenv in .venv; `make docs` builds the site alone (site/).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FASHION_DIR := /usr/share/datasets/fashion-mnist
PRESET ?= quick

.PHONY: main test test-all docs install data bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[experiments,test,docs]'
	touch $@

install: $(VENV)/.installed

# Fashion-MNIST IDX files from Debian's package when they are not there yet.
data:
	@if [ -z "$$JAXMTL_FASHION_MNIST_DIR" ] && [ ! -f $(FASHION_DIR)/train-images-idx3-ubyte.gz ]; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist; \
	  else \
	    echo "Fashion-MNIST not found and apt-get unavailable: set JAXMTL_FASHION_MNIST_DIR"; exit 1; \
	  fi; \
	fi

main: install data
	$(BIN)/python -m experiments.compare_methods --preset $(PRESET)

# strict: any warning (a broken link or cross-reference, a docstring mkdocstrings cannot
# read) fails the build; about 15 s, so `make test` (and CI) build it first
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test: docs
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=25

test-all: install
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m ''

# Benchmarks, with torch CPU, TorchJD and LibMTL for the side-by-side section.
bench: install
	$(BIN)/python -m pip install --quiet -e '.[experiments,test,bench]'
	$(BIN)/python -m pip install --quiet --no-deps LibMTL==1.1.5
	$(BIN)/python -m benchmarks --out benchmarks/RESULTS.md

clean:
	rm -rf $(VENV) results site .pytest_cache .hypothesis
