"""The MLflow start script: URI built from the RDS-managed secret, no secret in argv."""

from __future__ import annotations

import json

import pytest

ENV = {
    "MLFLOW_DB_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1",
    "MLFLOW_DB_HOST": "db.example.internal",
    "MLFLOW_DB_PORT": "5432",
    "MLFLOW_DB_NAME": "mlflow",
    "AWS_REGION": "us-east-1",
    "MLFLOW_ARTIFACTS_DESTINATION": "s3://bucket/mlflow",
    "MLFLOW_SERVER_ALLOWED_HOSTS": "mlflow.miva.svc.cluster.local:5000",
}


def secret_store(secret: dict):
    """Stands in for Secrets Manager (no AWS here): returns `secret` for the expected ARN."""
    calls = []

    def fetch(arn, region):
        calls.append((arn, region))
        return json.dumps(secret)

    return fetch, calls


def test_password_is_percent_encoded(start_mlflow):
    # '@' -> %40, ':' -> %3A, '/' -> %2F, '?' -> %3F: the URI must still parse as one host.
    uri = start_mlflow.postgres_uri("mlflow", "p@ss:w/rd?", "h", 5432, "mlflow")
    assert uri == "postgresql://mlflow:p%40ss%3Aw%2Frd%3F@h:5432/mlflow?sslmode=require"


def test_store_uri_from_managed_secret(start_mlflow):
    fetch, calls = secret_store({"username": "mlflow", "password": "x y"})
    uri = start_mlflow.store_uri(ENV, fetch=fetch)
    assert uri == "postgresql://mlflow:x%20y@db.example.internal:5432/mlflow?sslmode=require"
    assert calls == [(ENV["MLFLOW_DB_SECRET_ARN"], "us-east-1")]


def test_direct_uri_skips_secrets_manager(start_mlflow):
    fetch, calls = secret_store({})
    env = {**ENV, "MLFLOW_BACKEND_STORE_URI": "postgresql://u:p@h/db"}
    assert start_mlflow.store_uri(env, fetch=fetch) == "postgresql://u:p@h/db"
    assert calls == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"MLFLOW_DB_HOST": ""}, "MLFLOW_DB_HOST"),
        ({"MLFLOW_DB_SECRET_ARN": ""}, "MLFLOW_DB_SECRET_ARN"),
        ({"MLFLOW_DB_PORT": "54x"}, "MLFLOW_DB_PORT"),
    ],
)
def test_bad_settings_name_the_variable(start_mlflow, change, message):
    fetch, _ = secret_store({"username": "u", "password": "p"})
    with pytest.raises(start_mlflow.StartError, match=message):
        start_mlflow.store_uri({**ENV, **change}, fetch=fetch)


def test_secret_without_password_is_reported(start_mlflow):
    fetch, _ = secret_store({"username": "u"})
    with pytest.raises(start_mlflow.StartError, match="username and password"):
        start_mlflow.store_uri(ENV, fetch=fetch)


def test_server_command_keeps_secrets_out_of_argv(start_mlflow):
    command = start_mlflow.server_command(
        {**ENV, "MLFLOW_BACKEND_STORE_URI": "postgresql://u:secret@h/db"}
    )
    assert command[:2] == ["mlflow", "server"]
    assert "secret" not in " ".join(command)
    assert command[command.index("--artifacts-destination") + 1] == "s3://bucket/mlflow"
    assert "--serve-artifacts" in command


def test_server_command_requires_s3_and_allowed_hosts(start_mlflow):
    with pytest.raises(start_mlflow.StartError, match="s3://"):
        start_mlflow.server_command({**ENV, "MLFLOW_ARTIFACTS_DESTINATION": "/tmp/x"})
    with pytest.raises(start_mlflow.StartError, match="MLFLOW_SERVER_ALLOWED_HOSTS"):
        start_mlflow.server_command({**ENV, "MLFLOW_SERVER_ALLOWED_HOSTS": ""})
