"""Load the infra scripts (they live in infra/, outside the miva package) as modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_script(relative: str, name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def check_manifests():
    return load_script("infra/scripts/check_manifests.py", "miva_infra_check_manifests")


@pytest.fixture(scope="session")
def start_mlflow():
    return load_script("infra/k8s/base/mlflow/start_mlflow.py", "miva_infra_start_mlflow")


@pytest.fixture(scope="session")
def scan():
    return load_script("infra/scripts/scan.py", "miva_infra_scan")
