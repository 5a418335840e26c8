# leadpulse developer entry points. Every step says what it does; `make install` is
# idempotent and a second run only checks (apt, Maven and pip run only when needed).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
LEADPULSE := $(VENV)/bin/leadpulse
KAFKA_POM := deploy/kafka/pom.xml
# Shared by every checkout and every LEADPULSE_HOME; must match the default of
# Settings.kafka_libs (streams/settings.py).
KAFKA_LIBS ?= $(or $(LEADPULSE_KAFKA_LIBS),$(HOME)/.cache/leadpulse/kafka/libs)
export LEADPULSE_KAFKA_LIBS := $(abspath $(KAFKA_LIBS))
TEST_HOME := $(or $(LEADPULSE_TEST_HOME),.leadpulse-test)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help install system-packages kafka-libs venv test typecheck demo bench down clean

help:
	@echo "make install  system packages, Kafka jars and .venv (only what is missing)"
	@echo "make test     run the tests (their fixture starts the test stack in $(TEST_HOME))"
	@echo "make demo     stack, worker, exporter and a synthetic feed with a live view"
	@echo "make typecheck  mypy over the product code (part of make test)"
	@echo "make bench    run the benchmarks (docs/bench.md); make bench-NAME runs one:"
	@echo "              bench-memory, bench-scrape, bench-alerts (docs/alerts.md), bench-pipeline, bench-api"
	@echo "make down     stop the demo and test stacks (only processes they started)"
	@echo "make clean    make down, then remove .venv and the stacks' data"

install: system-packages kafka-libs venv
	@echo "==> install: done"

# apt-get runs only when something is missing. A temporary policy-rc.d keeps the
# Debian prometheus/alertmanager packages from starting system daemons on 9090/9093,
# which would shadow the stack's own; on systemd hosts they are also disabled.
system-packages:
	@echo "==> system packages: checking python3.11, java, maven, redis-server, redis-cli, prometheus, alertmanager"
	@missing=""; \
	command -v $(PYTHON) >/dev/null || missing="$$missing python3.11"; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3.11-venv"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v redis-cli >/dev/null || missing="$$missing redis-tools"; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null \
	  || missing="$$missing prometheus-alertmanager"; \
	if [ -z "$$missing" ]; then echo "    all present"; exit 0; fi; \
	echo "    installing:$$missing"; \
	if [ ! -e /usr/sbin/policy-rc.d ]; then \
	  echo "    (temporary /usr/sbin/policy-rc.d: packages must not start system daemons)"; \
	  printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee /usr/sbin/policy-rc.d >/dev/null; \
	  $(SUDO) chmod 755 /usr/sbin/policy-rc.d; \
	  trap '$(SUDO) rm -f /usr/sbin/policy-rc.d' EXIT; \
	fi; \
	$(SUDO) apt-get update -q; \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	if [ -d /run/systemd/system ]; then \
	  for unit in prometheus prometheus-alertmanager; do \
	    $(SUDO) systemctl disable --now "$$unit" >/dev/null 2>&1 || true; \
	  done; \
	fi; \
	daemons=$$(pgrep -a -x 'prometheus(-aler)?' | grep -v -- '--web.listen-address=' || true); \
	if [ -n "$$daemons" ]; then \
	  echo "$$daemons"; \
	  echo "    warning: system daemons above may hold ports 9090/9093; stop them or set LEADPULSE_*_PORT"; \
	fi

# Re-resolved only when the pom's checksum differs from the one recorded beside the jars.
kafka-libs: system-packages
	@want=$$(sha256sum $(KAFKA_POM) | cut -d' ' -f1); \
	if [ "$$(cat '$(LEADPULSE_KAFKA_LIBS)/.pom.sha256' 2>/dev/null)" = "$$want" ]; then \
	  echo "==> kafka jars: up to date in $(LEADPULSE_KAFKA_LIBS)"; exit 0; \
	fi; \
	echo "==> kafka jars: resolving $(KAFKA_POM) with Maven into $(LEADPULSE_KAFKA_LIBS)"; \
	mkdir -p '$(LEADPULSE_KAFKA_LIBS)'; \
	rm -f '$(LEADPULSE_KAFKA_LIBS)'/*.jar; \
	mvn -q -B -f $(KAFKA_POM) dependency:copy-dependencies \
	  -DoutputDirectory='$(LEADPULSE_KAFKA_LIBS)' -DincludeScope=runtime; \
	echo "$$want" > '$(LEADPULSE_KAFKA_LIBS)/.pom.sha256'; \
	echo "    $$(ls '$(LEADPULSE_KAFKA_LIBS)'/*.jar | wc -l) jars"

venv: $(VENV)/.installed
	@echo "==> venv: $(VENV) matches pyproject.toml"

$(VENV)/bin/python: | system-packages
	@echo "==> venv: creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	@echo "==> venv: pip install -e .[dev] (pyproject.toml is newer than the last install)"
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	@touch $@

test: install typecheck
	@echo "==> test: pytest (the session fixture starts or reuses the test stack)"
	$(VENV)/bin/pytest -q

typecheck: install
	@echo "==> typecheck: mypy over streams, aggregates and exporters"
	$(VENV)/bin/mypy streams aggregates exporters

demo: install
	@echo "==> demo: stack, worker, exporter and a synthetic feed with a live view (Ctrl-C stops them)"
	$(LEADPULSE) demo

bench: install
	@echo "==> bench: python -m tests.bench (about 6-7 minutes; figures against targets, never pass/fail)"
	$(VENV)/bin/python -m tests.bench

bench-%: install
	@echo "==> bench: python -m tests.bench $*"
	$(VENV)/bin/python -m tests.bench $*

down:
	@if [ ! -x $(LEADPULSE) ]; then echo "==> down: no $(LEADPULSE), nothing to stop"; exit 0; fi; \
	echo "==> down: stopping the demo stack ($${LEADPULSE_HOME:-.leadpulse})"; \
	$(LEADPULSE) stack down; \
	echo "==> down: stopping the test stack ($(TEST_HOME))"; \
	$(LEADPULSE) stack down --home $(TEST_HOME)

clean: down
	@echo "==> clean: removing $(VENV), the stacks' data and build leftovers"
	rm -rf $(VENV) $${LEADPULSE_HOME:-.leadpulse} $(TEST_HOME) .pytest_cache .mypy_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
