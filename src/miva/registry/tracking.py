"""MLflow set-up and lineage: one parent run per pipeline run, one child run per stage.

Where runs go: ``$MLFLOW_TRACKING_URI`` when set, else ``cfg.registry.tracking_uri``
(default ``sqlite:///.miva/mlflow.db`` with artifacts under ``./.miva/mlartifacts``: zero
set-up; ``mlflow ui --backend-store-uri sqlite:///.miva/mlflow.db`` shows it).

How separate processes (KFP components, CLI calls) find the same parent:
1. ``$MIVA_PARENT_RUN_ID`` (set by `pipeline_run` for its child processes), else
2. the run of this experiment tagged ``miva.kfp_run_id`` = ``$KFP_RUN_ID``, else
3. a new parent run is created.

A remote tracking server is retried ``registry.http_max_retries`` times with exponential
backoff (``registry.http_backoff_factor``); then one `TrackingError` names the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from miva.errors import MivaError

PARENT_ENV = "MIVA_PARENT_RUN_ID"
KFP_RUN_ENV = "KFP_RUN_ID"
KFP_TASK_ENV = "KFP_TASK_NAME"

TAG_KFP_RUN = "miva.kfp_run_id"
TAG_KFP_TASK = "miva.kfp_task_name"
TAG_GIT = "miva.git_commit"
TAG_CONFIG = "miva.config_hash"
TAG_STAGE = "miva.stage"
TAG_KIND = "miva.run_kind"  # "pipeline" | "stage"
TAG_PARENT = "mlflow.parentRunId"
TAG_SANDBOX = "miva.python_sandbox"  # how the python tool isolated model-written code
ROLLOUT_STAGES = ("sft", "grpo", "evaluate")  # stages whose rollouts may call tools


class TrackingError(MivaError):
    """The tracking server cannot be reached or refuses a request (after retries)."""


# ---------------------------------------------------------------------------- set-up


def tracking_uri(cfg) -> str:
    """The configured URI, with a relative SQLite path made absolute: MLflow caches stores by
    URI string, so a relative one would keep pointing at the first working directory."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.registry.tracking_uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def is_remote_uri(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "databricks"))


def default_artifact_location(cfg) -> str | None:
    """Artifact root for a new experiment: the config's, else ./.miva/mlartifacts for local
    stores; a remote server picks its own (e.g. its --artifacts-destination)."""
    if cfg.registry.artifact_location:
        return cfg.registry.artifact_location
    if is_remote_uri(tracking_uri(cfg)):
        return None
    return (Path(cfg.workdir).resolve() / "mlartifacts").as_uri()


def configure(cfg) -> str:
    """Point MLflow at the configured tracking/registry URI with bounded HTTP retries."""
    import mlflow

    from miva import storage

    storage.configure(cfg.storage)
    uri = tracking_uri(cfg)
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        db.parent.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(cfg.registry.http_max_retries)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = str(cfg.registry.http_backoff_factor)
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(int(cfg.registry.http_timeout_s))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0.5")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def tracking_call(cfg, what: str, fn, *args, **kwargs):
    """Run one MLflow call; network and server failures become one `TrackingError`."""
    from mlflow.exceptions import MlflowException
    from requests.exceptions import RequestException

    try:
        return fn(*args, **kwargs)
    except (MlflowException, RequestException, ConnectionError, OSError) as exc:
        uri = tracking_uri(cfg)
        retries = (
            f" after {cfg.registry.http_max_retries} retries with backoff"
            if is_remote_uri(uri)
            else ""
        )
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TrackingError(
            f"MLflow tracking server {uri}: cannot {what}{retries}: {msg[:500]}"
        ) from exc


def experiment_id(cfg) -> str:
    """The experiment `cfg.registry.experiment`, created when missing (race-safe)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    configure(cfg)
    name = cfg.registry.experiment

    def get_or_create() -> str:
        exp = mlflow.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        try:
            return mlflow.create_experiment(name, artifact_location=default_artifact_location(cfg))
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" in str(exc.error_code) or "already exists" in str(exc):
                exp = mlflow.get_experiment_by_name(name)
                if exp is not None:
                    return exp.experiment_id
            raise

    return tracking_call(cfg, f"open experiment {name!r}", get_or_create)


# ---------------------------------------------------------------------------- tags, params


def git_commit() -> str:
    if os.environ.get("MIVA_GIT_COMMIT"):
        return os.environ["MIVA_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def pipeline_tags(cfg, kfp_run_id: str | None) -> dict[str, str]:
    tags = {
        TAG_KIND: "pipeline",
        TAG_GIT: git_commit(),
        TAG_CONFIG: cfg.digest(),
        "miva.image_registry": cfg.pipeline.image_registry,
        "miva.image_tag": cfg.pipeline.image_tag,
        "miva.model": cfg.model.name_or_path,
    }
    if kfp_run_id:
        tags[TAG_KFP_RUN] = kfp_run_id
    if os.environ.get("MIVA_IMAGE"):
        tags["miva.image"] = os.environ["MIVA_IMAGE"]
    return tags


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{"a": {"b": 1}} -> {"a.b": "1"}; lists and None as JSON."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, prefix=f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            out[name] = text[:500]
    return out


def log_config(cfg) -> None:
    """Flattened config as params, the resolved config as `config/config.json`."""
    import mlflow

    mlflow.log_params(flatten(cfg.to_dict()))
    mlflow.log_dict(cfg.to_dict(), "config/config.json")


# ---------------------------------------------------------------------------- runs


def find_parent(cfg, kfp_run_id: str) -> str | None:
    """The id of the pipeline run tagged with this KFP run id, if one exists."""
    import mlflow

    exp = experiment_id(cfg)
    runs = tracking_call(
        cfg,
        "search runs",
        mlflow.search_runs,
        experiment_ids=[exp],
        filter_string=f"tags.`{TAG_KFP_RUN}` = '{kfp_run_id}' and tags.`{TAG_KIND}` = 'pipeline'",
        output_format="list",
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def create_pipeline_run(cfg, kfp_run_id: str | None = None) -> str:
    """Create (without activating) a parent run with the pipeline tags and the config."""
    from mlflow import MlflowClient

    exp = experiment_id(cfg)
    client = MlflowClient()
    run = tracking_call(
        cfg,
        "create the pipeline run",
        client.create_run,
        exp,
        run_name=cfg.run_name,
        tags=pipeline_tags(cfg, kfp_run_id),
    )
    run_id = run.info.run_id
    from mlflow.entities import Param

    params = [Param(k, v) for k, v in flatten(cfg.to_dict()).items()]
    tracking_call(cfg, "log the config", client.log_batch, run_id, params=params)
    tracking_call(
        cfg, "log the config", client.log_dict, run_id, cfg.to_dict(), "config/config.json"
    )
    return run_id


def resolve_parent(cfg, kfp_run_id: str | None = None, create: bool = True) -> str | None:
    """Parent run id from $MIVA_PARENT_RUN_ID, else the KFP run id tag, else a new one."""
    if os.environ.get(PARENT_ENV):
        return os.environ[PARENT_ENV]
    kfp_run_id = kfp_run_id or os.environ.get(KFP_RUN_ENV)
    if kfp_run_id:
        found = find_parent(cfg, kfp_run_id)
        if found:
            return found
    return create_pipeline_run(cfg, kfp_run_id) if create else None


def active_parent_id() -> str | None:
    """The parent run the current process works under, if any."""
    return os.environ.get(PARENT_ENV)


@contextmanager
def pipeline_run(cfg, kfp_run_id: str | None = None) -> Iterator[str]:
    """The parent run of one pipeline run; yields its id and exports $MIVA_PARENT_RUN_ID.

    A run created here is ended here (FINISHED, or FAILED on an exception); a parent that
    already existed ($MIVA_PARENT_RUN_ID or the KFP tag) is joined and left as it was.
    """
    from mlflow import MlflowClient

    configure(cfg)
    existing = resolve_parent(cfg, kfp_run_id, create=False)
    run_id = existing or create_pipeline_run(cfg, kfp_run_id or os.environ.get(KFP_RUN_ENV))
    saved = os.environ.get(PARENT_ENV)
    os.environ[PARENT_ENV] = run_id
    status = "FINISHED"
    try:
        yield run_id
    except BaseException:
        status = "FAILED"
        raise
    finally:
        if saved is None:
            os.environ.pop(PARENT_ENV, None)
        else:
            os.environ[PARENT_ENV] = saved
        if existing is None:
            tracking_call(
                cfg, "end the pipeline run", MlflowClient().set_terminated, run_id, status
            )


def end_pipeline_run(cfg, run_id: str | None = None, status: str = "FINISHED") -> None:
    """Mark a parent run ended (the last KFP stage calls this for the run it joined)."""
    from mlflow import MlflowClient

    configure(cfg)
    run_id = run_id or resolve_parent(cfg, create=False)
    if run_id:
        tracking_call(cfg, "end the pipeline run", MlflowClient().set_terminated, run_id, status)


@contextmanager
def stage_run(cfg, stage: str, kfp_run_id: str | None = None) -> Iterator[Any]:
    """One child run for one stage, active inside the block (mlflow.log_* go to it)."""
    import mlflow

    configure(cfg)
    parent = resolve_parent(cfg, kfp_run_id, create=False)
    own_parent = parent is None  # a stage run on its own (e.g. `miva register` by hand)
    if parent is None:
        parent = create_pipeline_run(cfg, kfp_run_id or os.environ.get(KFP_RUN_ENV))
    tags = {
        TAG_KIND: "stage",
        TAG_STAGE: stage,
        TAG_PARENT: parent,
        TAG_CONFIG: cfg.digest(),
        TAG_GIT: git_commit(),
    }
    kfp = kfp_run_id or os.environ.get(KFP_RUN_ENV)
    if kfp:
        tags[TAG_KFP_RUN] = kfp
    if os.environ.get(KFP_TASK_ENV):
        tags[TAG_KFP_TASK] = os.environ[KFP_TASK_ENV]
    if os.environ.get("MIVA_IMAGE"):
        tags["miva.image"] = os.environ["MIVA_IMAGE"]
    if stage in ROLLOUT_STAGES and "python" in cfg.agent.tools:
        from miva.agent.sandbox import sandbox_mode

        # how model-written code is isolated in this run (kernel+cgroup-v1, service:..., weak)
        tags[TAG_SANDBOX] = sandbox_mode(cfg.agent.python)
    exp = experiment_id(cfg)
    nested = mlflow.active_run() is not None
    run = tracking_call(
        cfg,
        f"start the {stage} run",
        mlflow.start_run,
        experiment_id=exp,
        run_name=stage,
        nested=nested,
        tags=tags,
    )
    saved = os.environ.get(PARENT_ENV)
    os.environ[PARENT_ENV] = parent
    status = "FINISHED"
    try:
        yield run
    except BaseException:
        status = "FAILED"
        raise
    finally:
        mlflow.end_run(status)
        if own_parent:
            from mlflow import MlflowClient

            tracking_call(
                cfg, "end the pipeline run", MlflowClient().set_terminated, parent, status
            )
        if saved is None:
            os.environ.pop(PARENT_ENV, None)
        else:
            os.environ[PARENT_ENV] = saved


# ---------------------------------------------------------------------------- lineage


def dataset_source_uri(path_or_uri: str | Path) -> str:
    text = str(path_or_uri)
    if "://" in text:
        return text
    return Path(text).resolve().as_uri()


def log_dataset(path_or_uri: str | Path, name: str | None = None, context: str = "train"):
    """Record a MIVA dataset folder as an input of the active run; returns its DatasetInfo.

    The MLflow dataset carries the folder's content digest (from `dataset.json`), its
    source URI and the sample schema; the per-split counts go into the input's tags.
    """
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, Schema

    from miva.data.io import read_info

    info = read_info(path_or_uri)
    source_uri = dataset_source_uri(path_or_uri)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = resolve_dataset_source(source_uri)
    schema = Schema(
        [
            ColSpec("string", c)
            for c in ("id", "task", "source", "question", "answer_type", "answer", "split")
        ]
    )
    dataset = MetaDataset(source=source, name=name or info.name, digest=info.digest, schema=schema)
    counts = {split: sum(tasks.values()) for split, tasks in info.counts.items()}
    mlflow.log_input(
        dataset,
        context=context,
        tags={"miva.counts": json.dumps(counts, sort_keys=True), "miva.source_uri": source_uri},
    )
    mlflow.set_tag(f"miva.dataset_digest.{context}", info.digest)
    return info


def log_report(path: str | Path, artifact_path: str = "report") -> None:
    """Attach an HTML report (a file, or a folder with its plots) to the active run."""
    import mlflow

    path = Path(path)
    if path.is_dir():
        mlflow.log_artifacts(str(path), artifact_path)
    else:
        mlflow.log_artifact(str(path), artifact_path)
