# The two commands of the README. Each creates .venv and installs into it when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock

.PHONY: demo test sysdeps lint bytecode bench clean lock

# pip compiles the packages' bytecode on one core; compileall -j 0 on every core: 155 s instead
# of 186 s for the whole install on two cores. torch's py312_intrinsics.py is Python 3.12 syntax
# (pip skips it the same way).
SITE = $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')

# Installs exactly requirements.lock (versions and hashes of every package, the extras and dev
# tools included), then the project itself without resolving anything again; pip check fails
# the install if the lock and pyproject.toml ever disagree.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-compile --no-deps -e .
	$(BIN)/pip check
	$(BIN)/python -m compileall -q -j 0 -x py312_intrinsics "$(SITE)"
	touch $(STAMP)

# Resolves pyproject.toml's ranges (all extras and the dev tools) into requirements.lock for
# Linux x86-64 and Python 3.11; run after changing a dependency, and commit both files.
# This machine's wheel directories join PyPI where they exist (torch's builds lie there).
INDEXES := --default-index https://pypi.org/simple --index-strategy unsafe-best-match \
	$(foreach d,$(wildcard /opt/pypi/simple /opt/pypi-more/simple),--index file://$(d)) \
	$(foreach d,$(wildcard /opt/wheels),--find-links $(d))
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --quiet \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		$(INDEXES) \
		--custom-compile-command "make lock" -o $(LOCK)

# The project's own bytecode, which pip does not compile for an editable install: without it,
# where PYTHONDONTWRITEBYTECODE is set, every process (each trial, each CLI call of the tests)
# compiles search_core and service again, about a second each. Only changed files are redone.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q search_core service

# The quickstart sweep (3x3 grid of L and F on the embedded digits, local Ray, CPU); running
# it again resumes it instead of starting over.
demo: bytecode
	@if [ -f runs/quickstart/sweep.json ]; then \
		$(BIN)/e2rnas sweep resume runs/quickstart; \
	else \
		$(BIN)/e2rnas sweep run sweeps/quickstart.yaml --out runs/quickstart; \
	fi
	@echo "Browse it in the web service: $(BIN)/e2rnas serve --database-url sqlite:///$(CURDIR)/runs/quickstart/results.db"
	@echo "then open http://127.0.0.1:8000/ (the sweep list; click the sweep for its Pareto pages)"

lint: $(STAMP)
	$(BIN)/ruff check search_core service tests bench
	$(BIN)/ruff format --check search_core service tests bench
	$(BIN)/mypy -n auto  # one worker per core: 41 s instead of 59 s cold
	$(BIN)/lint-imports

# The system packages the tests need: a PostgreSQL server (tests/conftest.py starts a throwaway
# one; Debian keeps initdb and pg_ctl in /usr/lib/postgresql/<version>/bin, off PATH) and
# Chromium. Installed with apt-get only when one is missing: nothing to do, no apt call.
APT_PACKAGES := postgresql chromium
HAVE_SYSDEPS = { { command -v pg_ctl && command -v initdb; } >/dev/null 2>&1 \
	|| ls /usr/lib/postgresql/*/bin/pg_ctl /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } \
	&& test -x /usr/bin/chromium

sysdeps:
	@if $(HAVE_SYSDEPS); then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=; \
	elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
	else \
		echo "make test needs Debian's $(APT_PACKAGES) packages (PostgreSQL's initdb and pg_ctl," \
			"/usr/bin/chromium); install them as root with:" >&2; \
		echo "  apt-get update && apt-get install -y --no-install-recommends $(APT_PACKAGES)" >&2; \
		exit 1; \
	fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "make test needs PostgreSQL (initdb, pg_ctl) and Chromium (/usr/bin/chromium);" \
			"there is no apt-get here to install Debian's $(APT_PACKAGES): install them" >&2; \
		exit 1; \
	fi; \
	echo "installing $(APT_PACKAGES) (apt-get)"; \
	$$sudo apt-get update \
		&& $$sudo env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends $(APT_PACKAGES) \
		&& if $(HAVE_SYSDEPS); then :; else \
			echo "apt-get installed $(APT_PACKAGES), yet initdb, pg_ctl or" \
				"/usr/bin/chromium is still missing" >&2; \
			exit 1; \
		fi

# One pytest worker per core (pytest-xdist), each handed the next test as it frees up
# (worksteal: the real-Ray tests take minutes, most others milliseconds).
test: sysdeps lint bytecode
	$(BIN)/pytest -q -n auto --dist worksteal

bench: $(STAMP)
	$(BIN)/python bench/step_cost.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache *.egg-info
	find search_core service tests bench -name __pycache__ -prune -exec rm -rf {} +
