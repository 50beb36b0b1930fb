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
	@# byte-compile the editable sources once (an editable install has no .pyc, and PYTHONDONTWRITEBYTECODE
	@# keeps Python from writing them: without this every CLI start compiles geofuse again, ~0.5 CPU-s)
	$(PY) -m compileall -q geofuse simulation >/dev/null
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m geofuse.demo $(DEMO_ARGS)

test: $(STAMP) qgis-test-env
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) simulation/benchmarks/bench_pansharpen.py $(BENCH_ARGS)

# QGIS plugin. The in-process plugin tests run in a venv made from Debian's python3 (it carries the qgis
# bindings) with --system-site-packages, plus pytest-qgis; tests/test_qgis_plugin.py starts them.
QGIS_PY    := /usr/bin/python3
QGIS_VENV  := .venv-qgis
QGIS_STAMP := $(QGIS_VENV)/.geofuse-qgis-installed

.PHONY: qgis-venv qgis-test-env qgis-plugin

qgis-venv: $(QGIS_STAMP)

$(QGIS_STAMP):
	@$(QGIS_PY) -c "import qgis.core" 2>/dev/null || { echo "no QGIS python bindings in $(QGIS_PY): apt-get install qgis python3-qgis qgis-providers"; exit 1; }
	@test -x $(QGIS_VENV)/bin/python || $(QGIS_PY) -m venv --system-site-packages $(QGIS_VENV)
	$(QGIS_VENV)/bin/python -m pip install -q "pytest>=7" "pytest-qgis>=5,<6"
	@touch $@

# make test builds the QGIS venv where QGIS is installed; elsewhere the QGIS tests skip with the reason
qgis-test-env:
	@if [ -x $(QGIS_PY) ] && $(QGIS_PY) -c "import qgis.core" >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(QGIS_STAMP); \
	else echo "QGIS not installed: the QGIS plugin tests will be skipped"; fi

# installable plugin zip: dist/geofuse_qgis-<version>.zip (QGIS: Plugins > Manage and Install > Install from ZIP)
qgis-plugin:
	$(PYTHON) qgis_plugin/build_zip.py dist

clean:
	rm -rf $(VENV) $(QGIS_VENV) demo_output .pytest_cache
