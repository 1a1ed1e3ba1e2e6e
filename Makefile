# Entry points, all from a fresh checkout: `make demo` (install + main job), `make test`, `make check` (lint, types,
# code shape, docs) and `make docs` (the documentation site in site/).
# torch is pinned in the same pip command as everything that depends on it, so pip takes the CPU wheel.
# laplace-torch and backpack (which curvlinops requires) list torchvision as a requirement but never import
# it; PyPI's torchvision does not load beside the local CPU torch wheel ("operator torchvision::nms does not
# exist") and, once installed, breaks torchmetrics' import. So those three come in without their
# dependencies, whose other requirements are in pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# MkDocs 1.x and Material print notices about their successors on every build; they are not warnings of ours
DOCS_ENV := DISABLE_MKDOCS_2_WARNING=true NO_MKDOCS_2_WARNING=1

.PHONY: install demo test check docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0" -e ".[dev]"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps "laplace-torch==0.3" "backpack-for-pytorch==1.7.1" "curvlinops-for-pytorch==3.0.1"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	MPLBACKEND=Agg $(BIN)/bnn-asym fit --data moons --symmetry standard w_asym sigma_asym

test: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest -n 2 --dist loadgroup --durations=15

check: $(STAMP)
	$(BIN)/ruff check bnn_asym tests benchmarks docs/gen_pages.py .ci
	$(BIN)/ruff format --check bnn_asym tests benchmarks docs/gen_pages.py .ci
	$(BIN)/mypy
	$(BIN)/python .ci/function_lengths.py
	$(DOCS_ENV) $(BIN)/mkdocs build --strict --quiet

docs: $(STAMP)
	$(DOCS_ENV) $(BIN)/mkdocs build --strict
