# Every target sets up what it needs on a fresh machine (Python venv, control-plane binaries
# built from Go modules into ~/.cache/scaleset-operator, Prometheus from Debian).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help demo test setup lint unit e2e crds cluster-up cluster-down testbin nodebin browser dashboard-screenshots prometheus kind-up clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,cli]'
	touch $(STAMP)

setup: $(STAMP) testbin nodebin browser ## Python environment, control-plane and real-node binaries, Chromium

testbin: ## Build (or reuse) kube-apiserver, etcd, kwok, helm ... from Go modules
	hack/testbin.sh >/dev/null

browser: ## Chromium for the dashboard's browser tests (Debian package), unless present
	hack/install-browser.sh

dashboard-screenshots: setup ## Regenerate the dashboard's pictures in docs/
	$(BIN)/python hack/dashboard-screenshots.py

nodebin: ## Real nodes: containerd, runc, busybox (Debian); kubelet, CNI plugins, crane (Go)
	hack/install-node-packages.sh
	hack/testbin.sh node >/dev/null

prometheus: ## Install Prometheus + promtool (Debian package) unless present
	hack/install-prometheus.sh

demo: setup ## The main job: local control plane + operator + a live upgrade and a rollback
	$(BIN)/scaleset-operator demo $(DEMO_ARGS)

test: setup prometheus lint ## Every test: lint, unit, property and end-to-end
	$(BIN)/pytest -p no:cacheprovider

lint: $(STAMP) ## ruff, mypy --strict, import-linter
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(STAMP) ## Fast tests only (no cluster)
	$(BIN)/pytest -m "not e2e" tests/unit

e2e: setup prometheus ## End-to-end tests on a local control plane
	$(BIN)/pytest -m e2e

crds: $(STAMP) ## Regenerate crds/ and the chart's copy from the models
	$(BIN)/scaleset-operator crds --write crds --write charts/scaleset-operator/crds

cluster-up: setup ## Start a local control plane in .cluster/
	$(BIN)/scaleset-operator cluster up

cluster-down: $(STAMP) ## Stop it
	$(BIN)/scaleset-operator cluster down

clean: ## Remove the venv and local cluster data (the binary cache stays)
	-$(BIN)/scaleset-operator cluster down 2>/dev/null
	rm -rf $(VENV) .cluster

kind-up: ## A kind cluster (kind-config.yaml) with the operator image loaded and the chart installed
	hack/kind-up.sh
