# One-command setup + run. `make demo` and `make test` create .venv idempotently (a stamp file
# records the installed requirements, so a second run only checks it).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.geofuse-installed
TORCH  := torch==2.13.0

.PHONY: demo test setup bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test,plot]"
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m geofuse.demo $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) simulation/benchmarks/bench_pansharpen.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo_output .pytest_cache
