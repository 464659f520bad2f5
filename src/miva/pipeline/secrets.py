"""Which Kubernetes secret keys become which environment variables in the stage pods.

One table for the KFP tasks (`kfp.kubernetes.use_secret_as_env`) and the multi-node
TrainJob pods, so both see the same credentials. Keys are named after the variables.

- `pipeline.s3_secret` (default `miva-s3`): all keys optional, since on EKS the pods can get
  S3 access from their service account (IRSA / pod identity) instead of static keys.
- `pipeline.mlflow_secret` (default `miva-mlflow`): `MLFLOW_TRACKING_URI` is required (a
  stage must never fall back to a local SQLite file on a cluster); the rest optional.
"""

from __future__ import annotations

from miva.config import PipelineConfig

S3_OPTIONAL = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL_S3",
    "MLFLOW_S3_ENDPOINT_URL",
)
MLFLOW_REQUIRED = ("MLFLOW_TRACKING_URI",)
MLFLOW_OPTIONAL = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def secret_env(cfg: PipelineConfig) -> list[tuple[str, tuple[str, ...], bool]]:
    """(secret name, keys, optional) triples."""
    return [
        (cfg.s3_secret, S3_OPTIONAL, True),
        (cfg.mlflow_secret, MLFLOW_REQUIRED, False),
        (cfg.mlflow_secret, MLFLOW_OPTIONAL, True),
    ]
