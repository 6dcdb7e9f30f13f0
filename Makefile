# Two commands for a newcomer:  `make demo` (install + stylize the bundled samples) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -e .
	touch $(STAMP)

demo: install
	$(VENV)/bin/neuralens demo

test: install
	$(VENV)/bin/ruff check neuralens tests benchmarks scripts
	$(VENV)/bin/ruff format --check neuralens tests benchmarks scripts
	bash scripts/test-services.sh
	$(PY) -m pytest

bench: install
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) neuralens-demo test-artifacts
