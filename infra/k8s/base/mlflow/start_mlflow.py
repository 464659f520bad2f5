"""Start the MLflow tracking server on EKS.

Reads the PostgreSQL credentials that RDS manages in Secrets Manager (through the pod's
EKS Pod Identity role), builds the backend store URI and replaces this process with
``mlflow server``. The URI travels in the environment (MLFLOW_BACKEND_STORE_URI), never on
the command line of the long-running server, so the password does not show up in its
process list (the optional one-off `mlflow db upgrade` does take it as an argument).

Environment:
  MLFLOW_BACKEND_STORE_URI      use this URI as is (skips Secrets Manager), or
  MLFLOW_DB_SECRET_ARN          secret with {"username", "password"} (RDS-managed)
  MLFLOW_DB_HOST, MLFLOW_DB_PORT (5432), MLFLOW_DB_NAME (mlflow)
  MLFLOW_ARTIFACTS_DESTINATION  s3://bucket/prefix for proxied artifacts (required)
  MLFLOW_SERVER_ALLOWED_HOSTS   comma-separated Host headers the server accepts (required)
  MLFLOW_WORKERS                server workers (default 2)
  MLFLOW_DB_UPGRADE             "true": run `mlflow db upgrade` before serving
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from urllib.parse import quote


class StartError(RuntimeError):
    """A missing or malformed setting; the message names it."""


def require(env: Mapping[str, str], key: str) -> str:
    value = env.get(key, "").strip()
    if not value:
        raise StartError(f"environment variable {key} is required")
    return value


def postgres_uri(username: str, password: str, host: str, port: int, database: str) -> str:
    """SQLAlchemy URI with user and password percent-encoded and TLS required."""
    user = quote(username, safe="")
    secret = quote(password, safe="")
    return f"postgresql://{user}:{secret}@{host}:{port}/{database}?sslmode=require"


def parse_secret(secret_string: str, arn: str) -> tuple[str, str]:
    """(username, password) from the JSON that RDS writes into the managed secret."""
    try:
        data = json.loads(secret_string)
        return str(data["username"]), str(data["password"])
    except (ValueError, KeyError, TypeError) as exc:
        raise StartError(f"secret {arn} is not JSON with username and password") from exc


def fetch_secret(arn: str, region: str | None) -> str:
    import boto3

    client = boto3.client("secretsmanager", region_name=region)
    return client.get_secret_value(SecretId=arn)["SecretString"]


def store_uri(env: Mapping[str, str], fetch=fetch_secret) -> str:
    """The backend store URI: given directly, or built from the RDS-managed secret."""
    direct = env.get("MLFLOW_BACKEND_STORE_URI", "").strip()
    if direct:
        return direct
    arn = require(env, "MLFLOW_DB_SECRET_ARN")
    username, password = parse_secret(fetch(arn, env.get("AWS_REGION")), arn)
    port_text = env.get("MLFLOW_DB_PORT", "5432").strip() or "5432"
    if not port_text.isdigit():
        raise StartError(f"MLFLOW_DB_PORT must be a number, got {port_text!r}")
    return postgres_uri(
        username,
        password,
        require(env, "MLFLOW_DB_HOST"),
        int(port_text),
        env.get("MLFLOW_DB_NAME", "mlflow").strip() or "mlflow",
    )


def server_command(env: Mapping[str, str]) -> list[str]:
    """`mlflow server` arguments; secrets stay out of argv."""
    destination = require(env, "MLFLOW_ARTIFACTS_DESTINATION")
    if not destination.startswith("s3://"):
        raise StartError(f"MLFLOW_ARTIFACTS_DESTINATION must be an s3:// URI, got {destination!r}")
    require(env, "MLFLOW_SERVER_ALLOWED_HOSTS")
    workers = env.get("MLFLOW_WORKERS", "2").strip() or "2"
    return [
        "mlflow",
        "server",
        "--host",
        "0.0.0.0",
        "--port",
        env.get("MLFLOW_PORT", "5000"),
        "--workers",
        workers,
        "--serve-artifacts",
        "--artifacts-destination",
        destination,
    ]


def main() -> int:
    env = dict(os.environ)
    try:
        env["MLFLOW_BACKEND_STORE_URI"] = store_uri(env)
        command = server_command(env)
    except StartError as exc:
        print(f"start_mlflow: {exc}", file=sys.stderr)
        return 2
    if env.get("MLFLOW_DB_UPGRADE", "").lower() == "true":
        subprocess.run(["mlflow", "db", "upgrade", env["MLFLOW_BACKEND_STORE_URI"]], check=True)
    os.execvpe(command[0], command, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
