"""Multi-node GRPO as a Kubeflow Trainer `TrainJob` (trainer.kubeflow.org/v1alpha1).

When `pipeline.num_nodes > 1` the grpo component does not train itself: it renders a
TrainJob that runs the train image with the same `miva grpo` arguments under `torchrun`
(the `torch-distributed` ClusterTrainingRuntime sets the `PET_*` variables torchrun reads),
creates it through the Kubernetes API, prints a line whenever its status changes and
raises the job's own error message when it fails. Dataset and model travel as s3:// URIs.
Every pod runs the data-parallel GRPO loop of a local `torchrun` (docs/distributed.md):
num_nodes x gpu_count ranks split each step's prompts, which is checked before submitting.

The manifest is a plain dict (`render_trainjob`), so it is testable without a cluster.
A retried component re-attaches to the TrainJob of the same run and task (name collision
-> follow the existing job) instead of starting a second one.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from miva.config import KUEUE_QUEUE_LABEL, MivaConfig
from miva.errors import MivaError
from miva.pipeline.secrets import secret_env

GROUP = "trainer.kubeflow.org"
VERSION = "v1alpha1"
PLURAL = "trainjobs"
TRAINER_JOB = "node"  # the replicated job of the torch runtimes that runs the trainer
PATCH_MANAGER = (
    "miva.ai/grpo"  # owner of our entry in spec.runtimePatches (a list keyed by manager)
)
SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class TrainJobError(MivaError):
    """The TrainJob could not be created, or it failed."""


def trainjob_name(run_id: str, task_name: str) -> str:
    """A DNS-1035 name, stable for one run and task: `miva-grpo-<12 hex>`."""
    digest = hashlib.sha256(f"{run_id}/{task_name}".encode()).hexdigest()[:12]
    return f"miva-grpo-{digest}"


def _label(value: str) -> str:
    """A Kubernetes label value (<= 63 chars of [A-Za-z0-9_.-], alphanumeric at both ends)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", value)[:63].strip("-_.") or "none"


def train_args(
    preset: str,
    overrides: list[str],
    dataset_uri: str,
    out_uri: str,
    start_model_uri: str | None = None,
) -> list[str]:
    """`miva grpo` arguments: the same preset and overrides, artifacts as URIs."""
    args = ["grpo", "-c", preset]
    for item in overrides:
        args += ["--set", item]
    args += ["--dataset", dataset_uri, "--out", out_uri]
    if start_model_uri:
        args += ["--model", start_model_uri]
    return args


def render_trainjob(
    cfg: MivaConfig,
    *,
    name: str,
    namespace: str,
    image: str,
    args: list[str],
    run_id: str = "",
    task_name: str = "",
) -> dict[str, Any]:
    """The TrainJob manifest as a dict (what `kubectl apply -f` would take)."""
    p = cfg.pipeline
    env: list[dict[str, Any]] = [
        {"name": "KFP_RUN_ID", "value": run_id},
        {"name": "KFP_TASK_NAME", "value": task_name},
    ]
    for secret, keys, optional in secret_env(p):
        env += [
            {
                "name": key,
                "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": optional}},
            }
            for key in keys
        ]
    pod_spec: dict[str, Any] = {
        "serviceAccountName": p.service_account,
        "nodeSelector": dict(p.gpu_node_selector),
        "tolerations": [{"key": p.gpu_toleration, "operator": "Exists", "effect": "NoSchedule"}],
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": p.shm_size}}],
        "containers": [
            {"name": TRAINER_JOB, "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]}
        ],
    }
    labels = {
        "app.kubernetes.io/part-of": "miva",
        "miva.ai/kfp-run-id": _label(run_id),
        "miva.ai/kfp-task-name": _label(task_name),
    }
    if p.kueue_queue:  # Kueue creates the job suspended and admits all its nodes at once
        labels[KUEUE_QUEUE_LABEL] = p.kueue_queue
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainJob",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "runtimeRef": {
                "apiGroup": GROUP,
                "kind": "ClusterTrainingRuntime",
                "name": p.trainer_runtime,
            },
            "trainer": {
                "image": image,
                "command": ["torchrun", "-m", "miva.cli"],
                "args": list(args),
                "numNodes": p.num_nodes,
                "numProcPerNode": p.gpu_count,
                "resourcesPerNode": {
                    "limits": {p.gpu_type: str(p.gpu_count)},
                    "requests": {p.gpu_type: str(p.gpu_count)},
                },
                "env": env,
            },
            "runtimePatches": [runtime_patch(pod_spec)],
        },
    }


def runtime_patch(pod_spec: dict[str, Any]) -> dict[str, Any]:
    """Our pod settings as a Trainer >= v2.2 `runtimePatches` entry on the trainer's job.

    v2.1's `podTemplateOverrides` (v2.0: `podSpecOverrides`) was replaced in v2.2 by patches
    keyed by manager, so Kueue and other controllers can own entries of their own. A patch
    takes only the PodSpec fields managers may set; tests/pipeline/test_trainjob.py checks
    the manifest against the v2.3 API models, as `make infra-validate` checks the runtime.
    """
    job_template = {"spec": {"template": {"spec": pod_spec}}}
    job = {"name": TRAINER_JOB, "template": job_template}
    return {
        "manager": PATCH_MANAGER,
        "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [job]}}},
    }


# --------------------------------------------------------------------------- API


def custom_objects_api():
    """CustomObjectsApi from the pod's service account, else from ~/.kube/config."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, FileNotFoundError) as exc:
            raise TrainJobError(
                f"no Kubernetes credentials (not in a pod, no kubeconfig): {exc}"
            ) from None
    return client.CustomObjectsApi()


def current_namespace(default: str) -> str:
    path = Path(SA_NAMESPACE_FILE)
    return path.read_text().strip() if path.exists() else default


def submit(api, manifest: dict[str, Any]) -> str:
    """Create the TrainJob; an existing one of the same name (a retried task) is followed."""
    from kubernetes.client.exceptions import ApiException

    meta = manifest["metadata"]
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, meta["namespace"], PLURAL, manifest)
    except ApiException as exc:
        if exc.status != 409:
            raise TrainJobError(
                f"TrainJob {meta['namespace']}/{meta['name']} was rejected "
                f"(HTTP {exc.status} {exc.reason}): {_api_message(exc)}"
            ) from None
    return meta["name"]


def _api_message(exc) -> str:
    import json

    try:
        return json.loads(exc.body).get("message", exc.body)
    except (TypeError, ValueError):
        return str(exc.body)


def job_state(obj: dict[str, Any]) -> tuple[str, str]:
    """(`Complete` | `Failed` | `Suspended` | `Created` | `Pending`, message) from status.conditions."""
    conditions = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}
    for kind in ("Failed", "Complete", "Suspended", "Created"):
        cond = conditions.get(kind)
        if cond and str(cond.get("status")) == "True":
            text = ": ".join(x for x in (cond.get("reason"), cond.get("message")) if x)
            return kind, text
    return "Pending", ""


def wait(
    api,
    namespace: str,
    name: str,
    *,
    poll_s: float,
    timeout_s: float | None = None,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll until Complete (return) or Failed (raise with the job's message)."""
    from kubernetes.client.exceptions import ApiException

    start = time.monotonic()
    last = None
    errors = 0
    while True:
        try:
            obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            errors = 0
        except ApiException as exc:
            if exc.status == 404:
                raise TrainJobError(f"TrainJob {namespace}/{name} disappeared") from None
            errors += 1  # a flaky API server is not a failed job; give it a few polls
            if errors > 5:
                raise TrainJobError(
                    f"TrainJob {namespace}/{name}: status unavailable (HTTP {exc.status})"
                ) from None
            obj = None
        if obj is not None:
            state, message = job_state(obj)
            if (state, message) != last:
                log(f"TrainJob {name}: {state}" + (f" ({message})" if message else ""))
                last = (state, message)
            if state == "Complete":
                return
            if state == "Failed":
                raise TrainJobError(
                    f"TrainJob {namespace}/{name} failed: {message or 'no reason given'}"
                )
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TrainJobError(f"TrainJob {namespace}/{name} still running after {timeout_s:.0f}s")
        sleep(poll_s)


def train_distributed(
    cfg: MivaConfig,
    *,
    preset: str,
    overrides: str,
    image: str,
    dataset_uri: str,
    out_uri: str,
    local_out: str,
    start_model_uri: str | None = None,
    run_id: str | None = None,
    task_name: str | None = None,
    api=None,
) -> str:
    """Run GRPO as a TrainJob and copy the trained model into the component's output.

    The run id and task name (default: `$KFP_RUN_ID`, `$KFP_TASK_NAME`) name the job and
    reach its pods, so the trainer's MLflow run carries them too.
    """
    import os

    from miva.pipeline.artifacts import parse_overrides
    from miva.storage import download_dir, is_remote

    run_id = os.environ.get("KFP_RUN_ID", "") if run_id is None else run_id
    task_name = os.environ.get("KFP_TASK_NAME", "") if task_name is None else task_name

    if not is_remote(dataset_uri) or not is_remote(out_uri):
        raise TrainJobError(
            "multi-node GRPO needs an s3:// pipeline root (pipeline.pipeline_root) so the "
            f"TrainJob pods can reach the artifacts; got dataset {dataset_uri}, output {out_uri}"
        )
    # the job's ranks split grpo.prompts_per_step evenly: a batch that does not split fails
    # here, before any pod starts (the same check each rank makes)
    from miva.rl.setup import check_batch

    check_batch(cfg.grpo, cfg.pipeline.num_nodes * cfg.pipeline.gpu_count)
    api = api or custom_objects_api()
    namespace = current_namespace(cfg.pipeline.namespace)
    manifest = render_trainjob(
        cfg,
        name=trainjob_name(run_id, task_name),
        namespace=namespace,
        image=image,
        args=train_args(preset, parse_overrides(overrides), dataset_uri, out_uri, start_model_uri),
        run_id=run_id,
        task_name=task_name,
    )
    name = submit(api, manifest)
    print(f"submitted TrainJob {namespace}/{name} ({cfg.pipeline.num_nodes} nodes)")
    wait(api, namespace, name, poll_s=cfg.pipeline.trainjob_poll_s)
    download_dir(out_uri, local_out)
    return name
