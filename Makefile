# chainml: `make demo` runs the main job, `make test` runs every check; both set up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
TS_STAMP := verifier-ts/node_modules/.installed
MYTH := .venv-mythril/bin/myth
FLOWER := .venv-flower/bin/python
DEBS := /usr/bin/chromedriver /usr/bin/ipfs_cid /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz /usr/sbin/nft

.PHONY: setup demo demo-hosts test lint typecheck unit bench audit artifacts clean posdevnet

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,torch,zk]'
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# the second verifier, TypeScript on Node, written from docs/protocol alone
$(TS_STAMP): verifier-ts/package.json verifier-ts/package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	cd verifier-ts && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian packages the tests use: chromium for the dashboard, ipfs_cid for IPFS CIDs,
# Fashion-MNIST for the encrypted CNN, nftables for random loss between test hosts
$(DEBS):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver ipfs-cid dataset-fashion-mnist nftables

$(MYTH): scripts/setup-mythril.sh
	PYTHON=$(PYTHON) bash scripts/setup-mythril.sh .venv-mythril

$(FLOWER): scripts/setup-flower.sh
	PYTHON=$(PYTHON) bash scripts/setup-flower.sh .venv-flower

# the proof-of-stake devnet's clients (Lodestar 1.5.1, EthereumJS 0.10.5) from npm, with
# pinned overrides and native builds, into .posdevnet/ (a second run does nothing)
posdevnet: setup
	$(PY) -m chainml.devtools.posdevnet install .posdevnet

demo: setup
	$(VENV)/bin/chainml demo

# the job with each party on its own network host (a namespace each; needs root), then a
# proof-of-stake devnet of three validator pairs on three hosts until it finalizes, and
# chainml's nodes on it: a job, Sybils, a chain node partitioned (~15 min)
demo-hosts: setup posdevnet
	$(PY) -m chainml.devtools.hostjob
	$(PY) -m chainml.devtools.posdevnet_job .posdevnet

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: setup
	$(VENV)/bin/mypy

unit: setup
	$(VENV)/bin/pytest

test: setup $(DEBS) $(TS_STAMP) lint typecheck
	cd verifier-ts && npm test
	$(PY) -m chainml.ledger.artifacts check
	$(PY) -m chainml.ledger.bindgen check
	$(PY) -m chainml.ledger.audit.static
	$(PY) -m chainml.ledger.audit.spec
	$(VENV)/bin/pytest -n 2 --dist loadgroup

bench: setup $(DEBS) $(FLOWER) posdevnet
	CHAINML_BENCH_FULL=1 $(PY) -m benchmarks all
	CHAINML_FUZZ_SCALE=10 $(VENV)/bin/pytest -q tests/contracts/test_invariants.py
	CHAINML_BENCH_FULL=1 $(VENV)/bin/pytest -q tests/hosts/test_posdevnet.py tests/hosts/test_sybil_hosts.py
	CHAINML_BENCH_FULL=1 $(VENV)/bin/pytest -q tests/node/test_rounds_zk.py -k L-infinity

audit: setup $(MYTH)
	$(PY) -m chainml.ledger.audit.symbolic
	$(VENV)/bin/pytest -m mythril tests/ledger/test_audit_symbolic.py

artifacts: setup
	$(PY) -m chainml.ledger.artifacts build
	$(PY) -m chainml.ledger.bindgen build

clean:
	rm -rf $(VENV) .venv-flower node_modules verifier-ts/node_modules verifier-ts/dist .pytest_cache .mypy_cache .ruff_cache .hypothesis
