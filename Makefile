# redress — `make run` shows the pipeline fixing an emulated AWS world; `make test` proves it.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 4599
# Where cargo puts the binary (CI sets CARGO_TARGET_DIR outside the clone).
BIN := $(or $(CARGO_TARGET_DIR),target)/debug/redress

# The local stack: the real AWS SDK talks to the emulator on loopback with dummy keys.
LOCAL_ENV := env -u AWS_PROFILE -u AWS_SESSION_TOKEN AWS_ENDPOINT_URL=http://127.0.0.1:$(PORT) AWS_REGION=us-east-1 \
	AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true \
	REDRESS_LOCAL_PORT=$(PORT)
TEST_ENV := env -u AWS_PROFILE -u AWS_SESSION_TOKEN AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
	AWS_EC2_METADATA_DISABLED=true

.PHONY: help run test chaos lint up down build venv clean bench deploy deploy-help

help: ## List targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-6s %s\n", $$1, $$2}'

$(VENV)/.installed: infra/local/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r infra/local/requirements.txt
	touch $@

venv: $(VENV)/.installed

build: ## Build the redress binary
	cargo build --workspace --all-targets

up: venv build ## Start the local AWS stack on 127.0.0.1:$(PORT) and provision queues and rule
	$(LOCAL_ENV) infra/local/stack.sh up
	$(LOCAL_ENV) $(BIN) provision

down: ## Stop the local stack
	$(LOCAL_ENV) infra/local/stack.sh down

run: up ## Demo: build a world with findings, let redress fix it, show what happened
	$(LOCAL_ENV) REDRESS_BIN=$(BIN) infra/local/demo.sh

test: venv ## Unit, SDK-level (aws-smithy-mocks) and end-to-end tests on a private local stack
	$(TEST_ENV) infra/local/stack.sh with cargo test --workspace
	$(TEST_ENV) infra/local/stack.sh with $(PY) infra/local/check_runbooks.py
	$(PY) infra/local/check_periodic.py

# Fault tests are slow and load the emulator, so they run one at a time, apart from
# `make test`; the fuzz target runs many more cases than its quick run in `make test`.
# `--workspace` keeps the feature set of `make test`: building one package alone would
# resolve other features and compile the AWS SDK a second time. The filter `chaos::` also
# selects `ledger_chaos::` (crash recovery through the ledger).
FUZZ_CASES ?= 100000
chaos: venv ## Fault tests (kill -9 x10, fault-injecting proxy, duplicate delivery, kill -9 between ledger intent and outcome) and a long fuzz run
	$(TEST_ENV) infra/local/stack.sh with cargo test --workspace --test e2e -- --ignored --nocapture --test-threads 1 chaos::
	REDRESS_FUZZ_CASES=$(FUZZ_CASES) cargo test --workspace --test fuzz -- --nocapture

lint: venv ## cargo fmt --check, clippy -D warnings, the layer rules, cfn-lint on the CloudFormation templates
	cargo fmt --all --check
	python3 .ci/layers.py
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint infra/cloudformation/*.yaml

# Conditions of a bench run (commit, machine, load), written beside the tables.
BENCH_WHEN = $$(date -u '+%F %T UTC'), load average $$(cut -d' ' -f1-3 /proc/loadavg)

bench: venv ## Benchmarks (not part of make test): domain, executor concurrency, pipeline, Lambda cost vs Python, approvals at scale; tables in bench-results/bench.txt and README.md
	mkdir -p bench-results
	{ echo "make bench: commit $$(git rev-parse --short HEAD 2>/dev/null)$$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')"; \
	  echo "machine: $$(nproc) CPUs, $$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $$(uname -sr)"; \
	  echo "start: $(BENCH_WHEN)"; } > bench-results/conditions.txt
	touch bench-results/.domain-start
	cargo bench -p redress-benches --bench domain -- --noplot >/dev/null
	$(PY) benches/domain_table.py $(or $(CARGO_TARGET_DIR),target) --since bench-results/.domain-start | tee bench-results/domain.txt
	cargo bench -p redress-workers --bench concurrency | tee bench-results/concurrency.txt
	cargo build --release -p redress-workers
	REDRESS_BIN=$(or $(CARGO_TARGET_DIR),target)/release/redress $(PY) benches/pipeline.py
	REDRESS_BIN=$(or $(CARGO_TARGET_DIR),target)/release/redress $(PY) benches/lambda_cost.py
	REDRESS_BIN=$(or $(CARGO_TARGET_DIR),target)/release/redress $(PY) benches/approvals.py
	echo "end:   $(BENCH_WHEN)" >> bench-results/conditions.txt
	cat bench-results/conditions.txt
	for f in conditions domain concurrency pipeline lambda approvals; do cat bench-results/$$f.txt; echo; done > bench-results/bench.txt
	$(PY) benches/readme.py bench-results/bench.txt README.md
	@echo "All tables: bench-results/bench.txt (and README.md's Performance section)"

# One AWS account and region: image, Lambda code, central stack, member roles, Config.
# Without every required setting it only prints the commands (a dry run); DRY_RUN=1 too.
DEPLOY_SETTINGS := REGION ACCOUNT APPROVERS OPERATORS SUBNETS SECURITY_GROUPS CODE_BUCKET \
	WORKER_MODE TAG ORGANIZATION_ID DRIFT_APPS CREATE_RECORDER ASSIGN_PUBLIC_IP ALARM_TOPIC DRY_RUN
deploy: ## Deploy to one AWS account (DRY_RUN=1 prints the commands; `make deploy-help` lists the settings)
	$(foreach v,$(DEPLOY_SETTINGS),$(if $($(v)),$(v)='$($(v))')) infra/deploy.sh

deploy-help: ## The settings `make deploy` takes
	@infra/deploy.sh --help

clean: down ## Remove build output, the virtualenv and local state
	cargo clean
	rm -rf $(VENV) .local
