# Two entry points, both from a fresh checkout: `make demo` (install + main job) and `make test`.
# torch is pinned in the same pip command as everything that depends on it, so pip takes the CPU wheel.
# laplace-torch and backpack (which curvlinops requires) list torchvision as a requirement but never import
# it; PyPI's torchvision does not load beside the local CPU torch wheel ("operator torchvision::nms does not
# exist") and, once installed, breaks torchmetrics' import. So those three come in without their
# dependencies, whose other requirements are in pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test

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
