"""Session-wide real servers for the registry integration tests, all on loopback:
PostgreSQL (Debian packages, `make system-deps`), moto's S3 server, and an `mlflow server`
whose backend is that PostgreSQL and whose artifacts are proxied to a bucket on moto."""

from __future__ import annotations

import itertools
import uuid

import pytest
from servers import DUMMY_AWS, MlflowServer, MotoS3, Postgres

from miva.config import load_config

BUCKET = "miva-mlflow"
_names = itertools.count()


@pytest.fixture(scope="session")
def s3_server():
    server = MotoS3().start()
    server.create_bucket(BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres():
    pg = Postgres().start()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def mlflow_server(postgres, s3_server):
    backend = postgres.create_db("mlflow")
    server = MlflowServer(backend, f"s3://{BUCKET}/mlartifacts", s3_server.url).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_model():
    """The agent's tiny-random Qwen2.5-VL preset (built once, cached under .miva/models)."""
    from miva.agent.model import resolve

    return resolve("tiny-random")


@pytest.fixture
def server_cfg(mlflow_server, s3_server, monkeypatch, tmp_path):
    """A config whose registry is the real MLflow server, with a model name of its own."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    for key, value in DUMMY_AWS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.url)
    monkeypatch.delenv("MIVA_PARENT_RUN_ID", raising=False)
    monkeypatch.delenv("KFP_RUN_ID", raising=False)
    name = f"agent-{next(_names)}-{uuid.uuid4().hex[:6]}"
    return load_config(
        "tiny-cpu",
        [
            f"workdir={tmp_path}/.miva",
            f"registry.model_name={name}",
            "registry.experiment=miva-it",
            "registry.http_max_retries=3",
            "registry.http_backoff_factor=0",
            "registry.http_timeout_s=20",
        ],
    )
