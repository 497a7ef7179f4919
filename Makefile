# Hoga: `make run` starts the whole stack, `make test` runs the full suite.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements/base.txt requirements/dev.txt | cksum | cut -d' ' -f1)

.PHONY: run test lint format venv services-stop clean-var

venv: $(STAMP)

$(STAMP): requirements/base.txt requirements/dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Hoga needs Python 3.11 or newer")'
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

run: venv
	$(VPY) scripts/devstack.py run

test: venv lint
	$(VPY) scripts/devstack.py test -- $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

services-stop: venv
	$(VPY) scripts/devstack.py services stop

clean-var: services-stop
	rm -rf var
