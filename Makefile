# `make test` is the one test command: it installs everything the tests need on a fresh
# Debian machine (Python deps, InspIRCd + Anope + ngIRCd, Dovecot, Postfix + Mailman 3,
# public-inbox, Synapse) and runs the whole suite.

PYTHON ?= python3
VENV ?= .venv
SYNAPSE_VENV ?= $(CURDIR)/.venv-synapse
PYTEST_ARGS ?=

export TODOBOT_SYNAPSE_VENV := $(SYNAPSE_VENV)

.PHONY: test unit coverage mutants deps servers demo clean

test: deps servers
	$(VENV)/bin/ruff check bot commands storage src tests bench
	TODOBOT_REQUIRE_SERVERS=1 $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Unit tests only: no chat servers needed.
unit: deps
	$(VENV)/bin/python -m pytest -m "not integration" $(PYTEST_ARGS)

# The whole suite under coverage (bot processes the tests start included); the table per
# package is what the README quotes.
coverage: deps servers
	rm -rf .coverage && mkdir -p .coverage
	-TODOBOT_REQUIRE_SERVERS=1 $(VENV)/bin/python -m coverage run -m pytest $(PYTEST_ARGS)
	$(VENV)/bin/python -m coverage combine -q
	$(VENV)/bin/python -m coverage report --format=markdown > .coverage/report.md
	$(VENV)/bin/python scripts/coverage-by-package.py .coverage/data

# Deliberate bugs in the trust and data rules (scripts/mutants.toml), each of which its named
# unit tests must catch; MUTANTS_ARGS="-j 2 --integration" runs two at once, integration ones too.
MUTANTS_ARGS ?=
mutants: deps
	$(VENV)/bin/python scripts/mutants.py $(MUTANTS_ARGS)

deps: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip uninstall --quiet -y todobot 2>/dev/null || true  # the old distribution name
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

servers:
	bash scripts/install-irc-servers.sh
	bash scripts/install-mail-servers.sh
	bash scripts/install-mailman.sh
	bash scripts/install-public-inbox.sh
	bash scripts/install-synapse.sh
	bash scripts/install-chromium.sh

demo: deps
	$(VENV)/bin/todobot demo

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .coverage build *.egg-info
