# The two commands of the README. Each creates .venv and installs into it when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The quickstart sweep (3x3 grid of L and F on the embedded digits, local Ray, CPU); running
# it again resumes it instead of starting over.
demo: $(STAMP)
	@if [ -f runs/quickstart/sweep.json ]; then \
		$(BIN)/e2rnas sweep resume runs/quickstart; \
	else \
		$(BIN)/e2rnas sweep run sweeps/quickstart.yaml --out runs/quickstart; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check search_core service tests bench
	$(BIN)/ruff format --check search_core service tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python bench/step_cost.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache *.egg-info
