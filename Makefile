# Hoga: `make run` starts the whole stack, `make test` runs the full suite.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements/base.txt requirements/dev.txt | cksum | cut -d' ' -f1)

.PHONY: run test lint format venv static browser services-stop clean-var

venv: $(STAMP)

$(STAMP): requirements/base.txt requirements/dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Hoga needs Python 3.11 or newer")'
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

run: static venv
	$(VPY) scripts/devstack.py run

# Coverage of apps/ (branch coverage included; see [tool.coverage] in pyproject.toml): a summary is printed at
# the end; the full suite must keep at least 85 %.
COVERAGE_ARGS ?= --cov --cov-report=term:skip-covered --cov-fail-under=85
# The suite runs in TEST_WORKERS pytest-xdist processes (most tests wait on real servers, so more workers than
# cores pay off); each has its own test database and Redis database (config/settings/test.py), and tests that
# share a stack run on one worker (tests/conftest.py). TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 3
XDIST_ARGS ?= $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)
test: static venv lint browser
	$(VPY) scripts/devstack.py test -- $(if $(PYTEST_ARGS),,$(COVERAGE_ARGS) $(XDIST_ARGS)) $(PYTEST_ARGS)

# Debian's Chromium (and a Hangul font) for the browser tests and screenshots; nothing to do when both exist.
HOGA_BROWSER ?= /usr/bin/chromium
browser:
	@if [ -x "$(HOGA_BROWSER)" ] && fc-list :lang=ko 2>/dev/null | grep -q .; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; else \
		if [ -x "$(HOGA_BROWSER)" ]; then echo "[hoga] no Hangul font: pages render Korean as boxes (apt-get install fonts-nanum)"; exit 0; fi; \
		echo "Chromium is missing at $(HOGA_BROWSER) and installing it needs root or sudo:" \
			"run 'apt-get install chromium fonts-nanum' as root, or set HOGA_BROWSER to a Chromium binary" >&2; exit 1; fi; \
	echo "[hoga] installing Debian's chromium and fonts-nanum for the browser tests"; \
	$$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		chromium fonts-nanum || { echo "installing chromium with apt-get failed (see above)" >&2; exit 1; }; \
	test -x "$(HOGA_BROWSER)" || { echo "chromium is installed but $(HOGA_BROWSER) does not exist: set HOGA_BROWSER" >&2; exit 1; }

# Browser libraries from package-lock.json (npm ci) copied to static/vendor/; a no-op when current.
static:
	$(PYTHON) scripts/build_static.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

services-stop: venv
	$(VPY) scripts/devstack.py services stop

clean-var: services-stop
	rm -rf var
