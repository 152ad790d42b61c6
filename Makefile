# Everything runs inside .venv; `make install` creates it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch build this project is developed and tested with (a local wheel on our machines).
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install test test-cuda bench-pipeline clean

install:  ## create .venv and install dba with its test tools
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e ".[test]"
	@echo "installed: run 'make test', then '$(VENV)/bin/dba --help'"

test:  ## the test suite (CUDA tests skip themselves without a GPU)
	$(PY) -m pytest -q

test-cuda:  ## only the CUDA tests
	$(PY) -m pytest -q -m cuda

bench-pipeline:  ## one epoch of full-MNIST SGD: our tensor pipeline vs torchvision + DataLoader
	$(VENV)/bin/dba bench pipeline

clean:
	rm -rf build dist *.egg-info .pytest_cache
