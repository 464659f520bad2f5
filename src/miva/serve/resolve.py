"""Where the served model comes from: a local folder, an s3:// URI or a registry URI.

`resolve_model(uri)` returns a `ModelSource`: the local `save_pretrained` folder the agent
loads, the name clients use, and, for `models:/NAME@ALIAS` or `models:/NAME/VERSION`, the
registered version and its MLflow LoggedModel id (served-request traces link to both).
A registry URI is resolved once, at start-up: a later alias move needs a restart (or a
rollout of the InferenceService, which `miva registry deploy` does).
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from miva.errors import ConfigError

_REGISTRY = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass
class ModelSource:
    uri: str  # what the user gave
    folder: Path  # a local save_pretrained folder
    name: str  # the default served model name
    registered_name: str | None = None
    version: str | None = None
    model_id: str | None = None  # MLflow LoggedModel id of the version (traces link to it)


def pyfunc_model_folder(mlflow_model_dir: Path) -> Path:
    """The `save_pretrained` folder inside a downloaded MIVA pyfunc (its `model` artifact)."""
    import yaml

    from miva.registry.model_logging import ARTIFACT_KEY

    mlmodel = yaml.safe_load((mlflow_model_dir / "MLmodel").read_text())
    artifacts = mlmodel.get("flavors", {}).get("python_function", {}).get("artifacts", {})
    rel = artifacts.get(ARTIFACT_KEY, {}).get("path")
    if not rel or not (mlflow_model_dir / rel / "config.json").is_file():
        raise ConfigError(
            f"{mlflow_model_dir}: not a MIVA pyfunc (no `{ARTIFACT_KEY}` artifact with config.json)"
        )
    return mlflow_model_dir / rel


def resolve_registry(uri: str, cfg) -> ModelSource:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from miva.registry.tracking import configure

    match = _REGISTRY.match(uri)
    if match is None:
        raise ConfigError(f"{uri!r}: registry URIs look like models:/NAME@ALIAS or models:/NAME/3")
    configure(cfg)
    name = match["name"]
    client = MlflowClient()
    try:
        if match["alias"]:
            mv = client.get_model_version_by_alias(name, match["alias"])
        else:
            mv = client.get_model_version(name, match["version"])
    except MlflowException as exc:
        raise ConfigError(f"{uri}: no such registered model version ({exc.message})") from None
    dest = Path(tempfile.mkdtemp(prefix="miva-serve-"))
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{mv.version}", dst_path=str(dest)
        )
    )
    return ModelSource(
        uri=uri,
        folder=pyfunc_model_folder(local),
        name=name,
        registered_name=name,
        version=str(mv.version),
        model_id=logged_model_id(mv),
    )


def logged_model_id(mv) -> str | None:
    """The LoggedModel id of a model version: `model_id` when the store fills it, else the
    id in its `models:/m-...` source (MLflow 3 registers logged models that way)."""
    if getattr(mv, "model_id", None):
        return mv.model_id
    source = str(getattr(mv, "source", "") or "")
    match = re.fullmatch(r"models:/(m-[0-9a-f]+)", source)
    return match.group(1) if match else None


def resolve_model(uri: str, cfg) -> ModelSource:
    """A folder, `tiny-random`, an s3:// URI, or models:/NAME@ALIAS | models:/NAME/VERSION."""
    if uri.startswith("models:/"):
        return resolve_registry(uri, cfg)
    from miva.agent.model import resolve

    folder = resolve(uri)
    if isinstance(folder, str):
        raise ConfigError(
            f"{uri!r} looks like a hub id; `miva serve` takes a local folder, an s3:// URI or "
            "models:/NAME@ALIAS (download hub checkpoints first)"
        )
    name = uri.rstrip("/").rsplit("/", 1)[-1] or "miva"
    return ModelSource(uri=uri, folder=Path(folder), name=name)
