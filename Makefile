# Tally: `make run` serves the portal with a demo customer; `make test` runs every test.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 5000
PYTHON ?= python3

.PHONY: run test install lint chromium system-deps serve clean

# Tally with its test needs, and its Python client (clients/python), whose tests run in `make test`.
$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -e ./clients/python
	touch $@

install: $(VENV)/.installed

## run: install, migrate, seed the demo customer, start localstripe when no Stripe key is set, serve
run: install
	PORT=$(PORT) bash devtools/run_demo.sh

## serve: production: migrate, then gunicorn workers on PostgreSQL and Redis (DATABASE_URL, REDIS_URL, SECRET_KEY)
serve: install
	bash devtools/serve.sh

## test: install test needs (Chromium included), lint, run the whole suite
test: install chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

## system-deps: Pango and a font for WeasyPrint (invoice PDFs), from Debian's packages when missing
system-deps:
	@ldconfig -p | grep -q libpangoft2-1.0 && fc-list 2>/dev/null | grep -qi dejavu || { \
	  echo "Installing Pango and fonts for invoice PDFs..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core fontconfig >/dev/null; }

## chromium: Debian's Chromium for the Playwright tests (Playwright cannot download browsers here)
chromium:
	@test -x /usr/bin/chromium || { \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

clean:
	rm -rf $(VENV) instance .pytest_cache
