"""A KServe InferenceService for the champion, rendered from the registry.

`render(cfg, version=None)` reads the `champion` alias (or the given version) and returns
the manifest as a dict; `miva registry deploy` writes it (and applies it with kubectl
when asked). The model URI is pinned to the version the alias pointed at when rendering
(`models:/NAME/VERSION`, the alias kept in an annotation), so moving the alias and
rendering again rolls the pods out to the new champion, and a pod restart never changes
the model behind a running service.

Two runtimes (`registry.deploy.runtime`):

- ``miva``: MIVA's GPU image running `miva serve` (the agent loop with its tools, the
  OpenAI-compatible routes on port 8080), reading the model from the registry;
- ``huggingface``: KServe's Hugging Face serving runtime with its vLLM backend
  (OpenAI-compatible, plain chat: no tools, no agent loop), reading the `save_pretrained`
  folder the version was registered from (its `miva.source_model` tag, an s3:// URI).

Pods follow the restricted Pod Security Standard: non-root, read-only root filesystem
with writable emptyDirs for /tmp and /dev/shm, no privilege escalation, all capabilities
dropped, the RuntimeDefault seccomp profile, no service-account token; GPU pods select and
tolerate the GPU pool; with `registry.deploy.image_digest` the image is pinned by digest.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from miva.errors import MivaError

API_VERSION = "serving.kserve.io/v1beta1"
PORT = 8080
HF_RUNTIME = "kserve-huggingfaceserver"  # the ClusterServingRuntime a KServe install ships
RUN_AS = 10001
GPU_POOL = ("miva.ai/pool", "gpu")
GPU_TAINT = "nvidia.com/gpu"


def _pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _resources(d) -> dict[str, Any]:
    amounts: dict[str, Any] = {"cpu": d.cpu, "memory": d.memory}
    if d.gpu_count:
        amounts[GPU_TAINT] = str(d.gpu_count)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _probes(path: str) -> dict[str, Any]:
    get = {"httpGet": {"path": path, "port": PORT}}
    return {
        # model download and load can take minutes: the startup probe holds the others off
        "startupProbe": {**get, "periodSeconds": 10, "failureThreshold": 90},
        "readinessProbe": {**get, "periodSeconds": 10, "timeoutSeconds": 5},
        "livenessProbe": {**get, "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 6},
    }


def _volumes() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    mounts = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "shm", "mountPath": "/dev/shm"}]
    volumes = [
        {"name": "tmp", "emptyDir": {"sizeLimit": "100Gi"}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
    ]
    return mounts, volumes


def _env() -> list[dict[str, str]]:
    # the root filesystem is read-only: every cache goes to the /tmp emptyDir
    return [
        {"name": "HOME", "value": "/tmp/home"},
        {"name": "HF_HOME", "value": "/tmp/hf"},
        {"name": "MIVA_MODEL_CACHE", "value": "/tmp/miva-models"},
        {"name": "TRITON_CACHE_DIR", "value": "/tmp/triton"},
    ]


def gpu_image(cfg) -> str:
    """MIVA's GPU image as the pipeline names it (`miva.pipeline.images.image_ref(...,
    "gpu", ...)`, which sits above this layer; tests/registry/test_deploy.py checks they
    agree), pinned by `registry.deploy.image_digest` when given."""
    ref = f"{cfg.pipeline.image_registry.rstrip('/')}/miva-gpu:{cfg.pipeline.image_tag}"
    digest = cfg.registry.deploy.image_digest
    return f"{ref}@{digest}" if digest else ref


def miva_container(cfg, model_uri: str) -> dict[str, Any]:
    d = cfg.registry.deploy
    mounts, _ = _volumes()
    args = [
        "serve",
        model_uri,
        "-c",
        d.preset,
        "--set",
        "serve.host=0.0.0.0",
        "--set",
        f"serve.port={PORT}",
        "--set",
        f"serve.model_name={cfg.registry.model_name}",
        "--set",
        f"serve.trace_requests={str(d.trace_requests).lower()}",
        "--set",
        f"registry.experiment={cfg.registry.experiment}",
    ]
    return {
        "name": "kserve-container",
        "image": gpu_image(cfg),
        "command": ["miva"],
        "args": args,
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": _env(),
        "envFrom": [{"secretRef": {"name": d.mlflow_secret}}],
        "resources": _resources(d),
        "securityContext": _container_security(),
        "volumeMounts": mounts,
        **_probes("/health"),
    }


def huggingface_model(cfg, storage_uri: str) -> dict[str, Any]:
    d = cfg.registry.deploy
    mounts, _ = _volumes()
    spec: dict[str, Any] = {
        "modelFormat": {"name": "huggingface"},
        "runtime": HF_RUNTIME,  # its image unless registry.deploy.huggingface_image pins one
        "storageUri": storage_uri,
        "args": [
            f"--model_name={cfg.registry.model_name}",
            "--backend=vllm",
            f"--dtype={cfg.model.dtype}",
        ],
        "env": _env(),
        "resources": _resources(d),
        "securityContext": _container_security(),
        "volumeMounts": mounts,
    }
    if d.huggingface_image:
        spec["image"] = d.huggingface_image
    return spec


def render_manifest(
    cfg, model_uri: str, version: str, alias: str | None, storage_uri: str | None
) -> dict[str, Any]:
    """The InferenceService for one registered version (pure: no registry access)."""
    d = cfg.registry.deploy
    _, volumes = _volumes()
    name = cfg.registry.model_name
    predictor: dict[str, Any] = {
        "minReplicas": d.min_replicas,
        "maxReplicas": d.max_replicas,
        # pod labels: the serving NetworkPolicy selects them
        "labels": {"app.kubernetes.io/name": d.name, "app.kubernetes.io/part-of": "miva"},
        "serviceAccountName": d.service_account,
        "automountServiceAccountToken": False,  # the pod never calls the Kubernetes API
        "securityContext": _pod_security(),
        "volumes": volumes,
    }
    if d.gpu_count:
        predictor["nodeSelector"] = {GPU_POOL[0]: GPU_POOL[1]}
        predictor["tolerations"] = [
            {"key": GPU_TAINT, "operator": "Exists", "effect": "NoSchedule"}
        ]
    if d.runtime == "miva":
        predictor["containers"] = [miva_container(cfg, model_uri)]
    else:
        if not storage_uri or not storage_uri.startswith("s3://"):
            raise MivaError(
                f"{name} v{version}: the huggingface runtime reads a save_pretrained folder from "
                f"S3, but the version's miva.source_model is {storage_uri!r}; register the model "
                "from an s3:// URI or use registry.deploy.runtime=miva"
            )
        predictor["model"] = huggingface_model(cfg, storage_uri)
    annotations = {
        "serving.kserve.io/deploymentMode": d.deployment_mode,
        "miva.ai/model-uri": model_uri,
    }
    if alias:
        annotations["miva.ai/model-alias"] = f"models:/{name}@{alias}"
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {
            "name": d.name,
            "namespace": d.namespace,
            "labels": {
                "app.kubernetes.io/name": d.name,
                "app.kubernetes.io/part-of": "miva",
                "app.kubernetes.io/component": "serving",
                "miva.ai/model-name": name,
                "miva.ai/model-version": str(version),
                "miva.ai/runtime": d.runtime,
            },
            "annotations": annotations,
        },
        "spec": {"predictor": predictor},
    }


def render(cfg, version: str | None = None, alias: str = "champion") -> dict[str, Any]:
    """The InferenceService of `version`, or of the version `alias` points at now.

    Reads the registry through MLflow's client itself: `miva.registry.registry` deploys on
    promotion, so this module stays below it."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from miva.registry.tracking import configure

    configure(cfg)
    name = cfg.registry.model_name
    client = MlflowClient()
    try:
        if version is None:
            mv = client.get_model_version_by_alias(name, alias)
        else:
            mv = client.get_model_version(name, str(version))
            alias = None
    except MlflowException as exc:
        wanted = f"version {version}" if version is not None else f"{alias!r} version"
        raise MivaError(f"{name} has no {wanted} to deploy ({exc}); register one first") from exc
    source = (mv.tags or {}).get("miva.source_model")
    return render_manifest(cfg, f"models:/{name}/{mv.version}", str(mv.version), alias, source)


def to_yaml(manifest: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(manifest, sort_keys=False)


def deploy(cfg, version: str | None = None, apply: bool | None = None) -> Path:
    """Render (champion by default), write `registry.deploy.output`, apply when asked."""
    from miva import storage

    manifest = render(cfg, version)
    out = cfg.registry.deploy.output
    text = to_yaml(manifest)
    if storage.is_remote(out):
        storage.write_text(out, text)
    else:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
    if cfg.registry.deploy.apply if apply is None else apply:
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            raise MivaError("registry.deploy.apply needs kubectl on PATH (and a kube context)")
        done = subprocess.run(
            [kubectl, "apply", "-f", "-"], input=text, text=True, capture_output=True
        )
        if done.returncode != 0:
            raise MivaError(f"kubectl apply failed: {done.stderr.strip() or done.stdout.strip()}")
    return Path(out) if not storage.is_remote(out) else Path(str(out))
