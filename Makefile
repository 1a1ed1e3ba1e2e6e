# Two entry points, both from a fresh checkout: `make demo` (install + main job) and `make test`.
# torch is pinned in the same pip command as everything that depends on it, so pip takes the CPU wheel.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0" -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	MPLBACKEND=Agg $(BIN)/bnn-asym fit --data moons --symmetry standard w_asym sigma_asym

test: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest -n 2 --durations=15
