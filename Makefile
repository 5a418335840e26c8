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
# The Kafka Streams peer of the pipeline benchmark (docs/bench.md), built by Maven.
KSTREAMS_PEER := tests/bench/peers/kstreams
KSTREAMS_JAR := $(KSTREAMS_PEER)/target/kstreams-peer.jar

# The compiled hot paths (Rust, PyO3): `pip install` builds them with cargo.
NATIVE := streams/native
NATIVE_SOURCES := $(NATIVE)/Cargo.toml $(NATIVE)/Cargo.lock $(wildcard $(NATIVE)/src/*.rs)
# rustup puts cargo here; a login shell's profile may not have run.
export PATH := $(HOME)/.cargo/bin:$(PATH)

GRAFANA_LINT := deploy/grafana/lint
GRAFANA_SCHEMA_STAMP := $(GRAFANA_LINT)/schema/node_modules/.installed
GRAFANA_SDK := $(GRAFANA_LINT)/sdk/bin/sdk

.PHONY: help install system-packages rust kafka-libs venv grafana-lint test typecheck demo bench bench-deps kstreams-peer chaos down clean

help:
	@echo "make install  system packages, Kafka jars, .venv (building the Rust extension) and the dashboard checkers (only what is missing)"
	@echo "make test     run the tests (their fixture starts the test stack in $(TEST_HOME))"
	@echo "make demo     stack, worker, exporter and a synthetic feed with a live view"
	@echo "make typecheck  mypy over the product code (part of make test)"
	@echo "make bench    run the benchmarks (docs/bench.md), after installing quixstreams and"
	@echo "              building the Kafka Streams peer; make bench-NAME runs one:"
	@echo "              bench-memory, bench-scrape, bench-alerts (docs/alerts.md), bench-pipeline, bench-api, bench-publish,"
	@echo "              bench-import (docs/import.md)"
	@echo "make chaos    the chaos soak (docs/reliability.md): CHAOS_MINUTES (default 20) of traffic and random"
	@echo "              faults on a stack of its own in .leadpulse-chaos, then an exact count; figures, never timing verdicts"
	@echo "make down     stop the demo and test stacks (only processes they started)"
	@echo "make clean    make down, then remove .venv and the stacks' data"

install: system-packages kafka-libs venv grafana-lint
	@echo "==> install: done"

# Prometheus or Alertmanager daemons by their command line: `pgrep -x` matches the process
# name, which the kernel cuts to 15 characters (prometheus-alertmanager), and warns about
# longer patterns on some procps versions. Anchored at the start, so the shell running
# this check, whose command line holds the pattern, never matches.
SYSTEM_DAEMONS := ^([^ ]*/)?(prometheus|prometheus-alertmanager|alertmanager)( |$$)

# apt-get runs only when something is missing. A temporary policy-rc.d keeps the
# Debian prometheus/alertmanager packages from starting system daemons on 9090/9093,
# which would shadow the stack's own; on systemd hosts they are also disabled.
# chromium is the browser tests/aggregates/review/test_browser.py opens the HTML report
# in (Playwright drives it; no browser is ever downloaded).
system-packages:
	@echo "==> system packages: checking python3.11, java, maven, redis-server, redis-cli, prometheus, alertmanager, chromium"
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
	command -v chromium >/dev/null || missing="$$missing chromium"; \
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
	daemons=$$(pgrep -a -f '$(SYSTEM_DAEMONS)' | grep -v -- '--web.listen-address=' || true); \
	if [ -n "$$daemons" ]; then \
	  echo "$$daemons"; \
	  echo "    warning: system daemons above may hold ports 9090/9093; stop them or set LEADPULSE_*_PORT"; \
	fi

# Rust 1.74 or later (PyO3's minimum) comes from the machine, as Node and Go do.
rust:
	@command -v cargo >/dev/null || { echo "cargo is missing: install Rust 1.74 or later (https://rustup.rs), then make install"; exit 1; }
	@echo "==> rust: $$(cargo --version) builds $(NATIVE)"

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

$(VENV)/.installed: pyproject.toml $(NATIVE_SOURCES) | $(VENV)/bin/python rust
	@echo "==> venv: pip install -e .[dev], cargo building $(NATIVE) (pyproject.toml or the Rust sources are newer than the last install)"
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	@touch $@

# The dashboard's validators (tests/exporters/test_dashboard_schema.py): Grafana's schema
# and display code from npm (package-lock.json, `npm ci`) and the foundation SDK's
# strict decoder from the Go module proxy (go.sum). Each is rebuilt only when its lock
# file is newer than its stamp; Node 20 and Go come from the machine.
grafana-lint: $(GRAFANA_SCHEMA_STAMP) $(GRAFANA_SDK)
	@echo "==> grafana lint: @grafana/schema and the foundation SDK checker are up to date"

$(GRAFANA_SCHEMA_STAMP): $(GRAFANA_LINT)/schema/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node 20) is missing: install nodejs and npm"; exit 1; }
	@echo "==> grafana lint: npm ci in $(GRAFANA_LINT)/schema"
	cd $(GRAFANA_LINT)/schema && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(GRAFANA_SDK): $(GRAFANA_LINT)/sdk/main.go $(GRAFANA_LINT)/sdk/go.mod $(GRAFANA_LINT)/sdk/go.sum
	@command -v go >/dev/null || { echo "go is missing: install Go 1.26"; exit 1; }
	@echo "==> grafana lint: go build the foundation SDK checker"
	cd $(GRAFANA_LINT)/sdk && go build -mod=readonly -o bin/sdk .

test: install typecheck
	@echo "==> test: cargo test (the Rust unit tests of $(NATIVE))"
	cargo test -q --release --manifest-path $(NATIVE)/Cargo.toml
	@echo "==> test: pytest (the session fixture starts or reuses the test stack)"
	$(VENV)/bin/pytest -q

typecheck: install
	@echo "==> typecheck: mypy over streams, aggregates and exporters"
	$(VENV)/bin/mypy streams aggregates exporters

demo: install
	@echo "==> demo: stack, worker, exporter and a synthetic feed with a live view (Ctrl-C stops them)"
	$(LEADPULSE) demo

# What only the benchmark needs: the `bench` extra (the Quix Streams peer) and the Kafka
# Streams peer's jar. `make test` needs neither.
bench-deps: install $(VENV)/.bench-installed kstreams-peer

$(VENV)/.bench-installed: pyproject.toml $(VENV)/.installed
	@echo "==> venv: pip install -e .[dev,bench] (the benchmark's peers)"
	$(VENV)/bin/pip install -q -e '.[dev,bench]'
	@touch $@

kstreams-peer: $(KSTREAMS_JAR)
	@echo "==> kstreams peer: $(KSTREAMS_JAR) matches its sources"

# Rebuilt only when the pom or the Java source is newer than the jar.
$(KSTREAMS_JAR): $(KSTREAMS_PEER)/pom.xml $(shell find $(KSTREAMS_PEER)/src -name '*.java') | system-packages
	@echo "==> kstreams peer: building $(KSTREAMS_JAR) with Maven"
	rm -rf $(KSTREAMS_PEER)/target/libs
	mvn -q -B -Dstyle.color=never -f $(KSTREAMS_PEER)/pom.xml package dependency:copy-dependencies
	@touch $@

bench: bench-deps
	@echo "==> bench: python -m tests.bench (about 15 minutes; figures against targets, never pass/fail)"
	$(VENV)/bin/python -m tests.bench

# The alert figures of docs/alerts.md: the conversion alerts and the follow-up alerts.
bench-alerts: bench-deps
	@echo "==> bench: python -m tests.bench alerts followup"
	$(VENV)/bin/python -m tests.bench alerts followup

bench-%: bench-deps
	@echo "==> bench: python -m tests.bench $*"
	$(VENV)/bin/python -m tests.bench $*

# The soak's own stack (free ports, .leadpulse-chaos) is started empty and stopped at the end.
# CHAOS_ARGS passes more options, e.g. --cluster or --faults (python -m tests.chaos --help).
# It needs the stack and the venv, not the dashboard checkers.
CHAOS_MINUTES ?= 20
CHAOS_ARGS ?=
chaos: system-packages kafka-libs venv
	@echo "==> chaos: $(CHAOS_MINUTES) minutes of traffic and faults (python -m tests.chaos)"
	$(VENV)/bin/python -m tests.chaos --minutes $(CHAOS_MINUTES) $(CHAOS_ARGS)

down:
	@if [ ! -x $(LEADPULSE) ]; then echo "==> down: no $(LEADPULSE), nothing to stop"; exit 0; fi; \
	echo "==> down: stopping the demo stack ($${LEADPULSE_HOME:-.leadpulse})"; \
	$(LEADPULSE) stack down; \
	echo "==> down: stopping the test stack ($(TEST_HOME))"; \
	$(LEADPULSE) stack down --home $(TEST_HOME)

clean: down
	@echo "==> clean: removing $(VENV), the stacks' data and build leftovers"
	rm -rf $(VENV) $${LEADPULSE_HOME:-.leadpulse} $(TEST_HOME) .pytest_cache .mypy_cache *.egg-info \
	  $(KSTREAMS_PEER)/target $(NATIVE)/target streams/_native*.so
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
