"""Offline schema and contract check of rendered kustomize output.

Usage: check_manifests.py [--kubernetes-version 1.33] [--pods-only] RENDERED.yaml [...]

Every document is checked against a real schema, chosen by kind:
  built-in kinds         kubernetes-validate (the Kubernetes OpenAPI schemas), strict:
                         unknown fields are errors
  trainer.kubeflow.org   kubeflow-trainer-api (models generated from the Trainer CRDs):
                         types are validated; fields the models drop are unknown fields
  karpenter.sh / .k8s.aws  infra/k8s/schemas/*.json (our JSON Schemas of the v1 API)
  kueue.x-k8s.io         infra/k8s/schemas/kueue.*.json (generated from Kueue's CRDs by
                         infra/scripts/kueue_schemas.py)
  serving.kserve.io      infra/k8s/schemas/serving.kserve.io_v1beta1_inferenceservice.json
                         for KServe's own fields, plus the Kubernetes Pod schema (strict)
                         for the pod and container fields a predictor embeds
A kind with none of these is an error, so nothing passes unchecked. Then the contract
with the pipeline is checked on the whole rendering (see check_contract), and the security
contract of MIVA's own workloads (see check_security): the pod templates of objects
labelled app.kubernetes.io/part-of=miva, including those inside CRDs that generic
scanners cannot read (the Trainer runtime), run restricted, without an API token, on
images pinned by tag and digest, and isolated by NetworkPolicies. With --pods-only (a
folder that is not a whole overlay, such as k8s/serving) the overlay-wide promises are
skipped: only the per-pod rules and the security contract of the objects in the file.

Exit status 0 when everything passes, 1 otherwise; one line per problem.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "k8s" / "schemas"
CUSTOM_SCHEMAS = {
    ("karpenter.sh/v1", "NodePool"): "karpenter.sh_v1_nodepool.json",
    ("karpenter.k8s.aws/v1", "EC2NodeClass"): "karpenter.k8s.aws_v1_ec2nodeclass.json",
    **{
        ("kueue.x-k8s.io/v1beta2", kind): f"kueue.x-k8s.io_v1beta2_{kind.lower()}.json"
        for kind in ("ClusterQueue", "LocalQueue", "ResourceFlavor", "Cohort")
    },
    ("serving.kserve.io/v1beta1", "InferenceService"): (
        "serving.kserve.io_v1beta1_inferenceservice.json"
    ),
}
# Fields of a KServe `model` spec that are not Container fields.
KSERVE_MODEL_FIELDS = {
    "modelFormat",
    "runtime",
    "runtimeVersion",
    "protocolVersion",
    "storageUri",
    "storage",
}
# Fields of a KServe component (predictor, transformer) that are not PodSpec fields.
KSERVE_COMPONENT_FIELDS = {
    "minReplicas",
    "maxReplicas",
    "scaleTarget",
    "scaleMetric",
    "scaleMetricType",
    "containerConcurrency",
    "timeout",
    "canaryTrafficPercent",
    "labels",
    "annotations",
    "deploymentStrategy",
    "autoScaling",
    "batcher",
    "logger",
    "workerSpec",
    "storageContainerName",
    "storageUris",
    "model",
    *("huggingface", "lightgbm", "onnx", "paddle", "pmml", "pytorch", "sklearn"),
    *("tensorflow", "triton", "xgboost"),
}
TRAINER_GROUP = "trainer.kubeflow.org/"

# The contract with the pipeline (see docs/infrastructure.md, "The contract with the pipeline").
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_POOL_LABEL = ("miva.ai/pool", "gpu")
PIPELINE_NAMESPACE = "kubeflow"
PIPELINE_SERVICE_ACCOUNT = "miva-pipeline"
MLFLOW_URI = "http://mlflow.miva.svc.cluster.local:5000"
POD_TEMPLATE_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "Job", "ReplicaSet"}

# The security contract (see check_security).
PART_OF = ("app.kubernetes.io/part-of", "miva")
# KFP labels every pod of a run with its run id; the pipeline pods are not in the overlays
# (KFP creates them), so their NetworkPolicy is checked against a pod with this label.
PIPELINE_POD_LABELS = {"pipeline/runid": "any-run"}
# Pods that run model-written code carry this label and may send nothing at all.
SANDBOX_LABELS = {"miva.ai/workload": "sandbox"}
PINNED_IMAGE = re.compile(
    r"^[^@\s]+:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})@sha256:[0-9a-f]{64}$"
)


@dataclass(frozen=True)
class Document:
    source: str
    index: int
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion", ""))

    @property
    def name(self) -> str:
        return str(self.body.get("metadata", {}).get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.body.get("metadata", {}).get("namespace", ""))

    def where(self) -> str:
        return f"{self.source}#{self.index} {self.kind}/{self.name}"


def load_documents(path: Path) -> tuple[list[Document], list[str]]:
    """Documents of one multi-document YAML file, and problems with its structure."""
    problems: list[str] = []
    docs: list[Document] = []
    try:
        raw = list(yaml.safe_load_all(path.read_text()))
    except yaml.YAMLError as exc:
        return [], [f"{path}: not valid YAML: {exc}"]
    for index, body in enumerate(raw):
        if body is None:
            continue
        if not isinstance(body, dict):
            problems.append(f"{path}#{index}: document is not a mapping")
            continue
        doc = Document(str(path), index, body)
        if not doc.api_version or not doc.kind or not doc.name:
            problems.append(f"{doc.where()}: apiVersion, kind and metadata.name are required")
            continue
        docs.append(doc)
    if not docs and not problems:
        problems.append(f"{path}: no Kubernetes objects")
    return docs, problems


# ------------------------------------------------------------------ schema checks


def unknown_fields(given: Any, kept: Any, path: str = "") -> Iterator[str]:
    """Keys present in `given` that a model round trip (`kept`) dropped."""
    if isinstance(given, dict):
        kept_dict = kept if isinstance(kept, dict) else {}
        for key, value in given.items():
            child = f"{path}.{key}" if path else str(key)
            if key not in kept_dict:
                yield child
            else:
                yield from unknown_fields(value, kept_dict[key], child)
    elif isinstance(given, list) and isinstance(kept, list):
        for i, (g, k) in enumerate(zip(given, kept, strict=False)):
            yield from unknown_fields(g, k, f"{path}[{i}]")


def check_trainer(doc: Document) -> list[str]:
    from kubeflow_trainer_api import models
    from pydantic import ValidationError

    version = doc.api_version.split("/", 1)[1]
    model = getattr(models, f"Trainer{version.capitalize()}{doc.kind}", None)
    if model is None:
        return [
            f"{doc.where()}: kubeflow-trainer-api has no model for {doc.api_version} {doc.kind}"
        ]
    try:
        parsed = model.from_dict(doc.body)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        return [f"{doc.where()}: {loc}: {first['msg']} ({exc.error_count()} error(s))"]
    dropped = list(unknown_fields(doc.body, parsed.to_dict()))
    return [f"{doc.where()}: unknown field {field}" for field in dropped]


def check_custom(doc: Document, schema_file: str) -> list[str]:
    import jsonschema

    schema = json.loads((SCHEMA_DIR / schema_file).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(doc.body), key=lambda e: list(e.path)):
        loc = ".".join(str(p) for p in error.path) or "(root)"
        problems.append(f"{doc.where()}: {loc}: {error.message}")
    return problems


def check_builtin(doc: Document, kubernetes_version: str) -> list[str] | None:
    """Problems, or None when kubernetes-validate has no schema for the kind."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc.body, kubernetes_version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return None
    except kubernetes_validate.ValidationError as exc:
        loc = ".".join(str(p) for p in exc.path) or "(root)"
        return [f"{doc.where()}: {loc}: {exc.message}"]
    return []


def component_pod(component: dict[str, Any]) -> dict[str, Any]:
    """The pod a KServe component becomes: its PodSpec fields, its `model` as a container."""
    spec = {k: v for k, v in component.items() if k not in KSERVE_COMPONENT_FIELDS}
    model = component.get("model")
    if isinstance(model, dict):
        container = {k: v for k, v in model.items() if k not in KSERVE_MODEL_FIELDS}
        container.setdefault("name", "kserve-container")
        spec["containers"] = [container, *spec.get("containers", [])]
    return spec


def check_inference_service(doc: Document, kubernetes_version: str) -> list[str]:
    """KServe's fields against our schema, the embedded pod against Kubernetes' own."""
    problems = check_custom(doc, CUSTOM_SCHEMAS[(doc.api_version, doc.kind)])
    for name, component in doc.body.get("spec", {}).items():
        if name not in ("predictor", "transformer") or not isinstance(component, dict):
            continue
        spec = component_pod(component)
        if not spec.get("containers"):
            problems.append(f"{doc.where()}: spec.{name} has neither containers nor a model")
            continue
        pod = Document(
            doc.source,
            doc.index,
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": doc.name}, "spec": spec},
        )
        found = check_builtin(pod, kubernetes_version) or []
        problems.extend(p.replace("Pod/", f"InferenceService/spec.{name}: Pod/", 1) for p in found)
    return problems


def check_schema(doc: Document, kubernetes_version: str) -> tuple[str, list[str]]:
    """(what checked it, problems)."""
    if doc.api_version.startswith(TRAINER_GROUP):
        return "kubeflow-trainer-api", check_trainer(doc)
    custom = CUSTOM_SCHEMAS.get((doc.api_version, doc.kind))
    if custom and doc.kind == "InferenceService":
        checker = f"schemas/{custom} + kubernetes-validate {kubernetes_version} (pod)"
        return checker, check_inference_service(doc, kubernetes_version)
    if custom:
        return f"schemas/{custom}", check_custom(doc, custom)
    builtin = check_builtin(doc, kubernetes_version)
    if builtin is None:
        return "none", [f"{doc.where()}: no schema for {doc.api_version} {doc.kind}"]
    return f"kubernetes-validate {kubernetes_version}", builtin


# ------------------------------------------------------------------ contract checks


def pod_templates(doc: Document) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, pod template: metadata and spec) of every pod template in the object."""
    body = doc.body
    if doc.kind in POD_TEMPLATE_KINDS:
        template = body.get("spec", {}).get("template")
        if isinstance(template, dict) and isinstance(template.get("spec"), dict):
            yield "spec.template", template
    if doc.kind == "InferenceService":  # KServe gives the pods the object's and component's labels
        meta_labels = body.get("metadata", {}).get("labels") or {}
        for name in ("predictor", "transformer"):
            component = body.get("spec", {}).get(name)
            if isinstance(component, dict):
                labels = {**meta_labels, **(component.get("labels") or {})}
                yield (
                    f"spec.{name}",
                    {"metadata": {"labels": labels}, "spec": component_pod(component)},
                )
    if doc.kind in {"ClusterTrainingRuntime", "TrainingRuntime"}:
        jobs = body.get("spec", {}).get("template", {}).get("spec", {}).get("replicatedJobs", [])
        for job in jobs:
            template = job.get("template", {}).get("spec", {}).get("template")
            if isinstance(template, dict) and isinstance(template.get("spec"), dict):
                yield f"replicatedJobs[{job.get('name')}]", template


def pod_specs(doc: Document) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, pod spec) of every pod template in the object."""
    for path, template in pod_templates(doc):
        yield f"{path}.spec", template["spec"]


def requests_gpu(pod: dict[str, Any]) -> bool:
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        resources = container.get("resources", {})
        for section in ("limits", "requests"):
            if GPU_TAINT_KEY in resources.get(section, {}):
                return True
    return False


def tolerates_gpu_taint(pod: dict[str, Any]) -> bool:
    for tol in pod.get("tolerations", []):
        key_ok = tol.get("key") == GPU_TAINT_KEY
        effect_ok = tol.get("effect") in (None, "", "NoSchedule")
        if key_ok and effect_ok:
            return True
    return False


def find(docs: Iterable[Document], kind: str, name: str, namespace: str | None = None):
    for doc in docs:
        if (
            doc.kind == kind
            and doc.name == name
            and (namespace is None or doc.namespace == namespace)
        ):
            return doc
    return None


def secret_value(doc: Document, key: str) -> str | None:
    if key in doc.body.get("stringData", {}):
        return doc.body["stringData"][key]
    if key in doc.body.get("data", {}):
        return base64.b64decode(doc.body["data"][key]).decode()
    return None


def check_contract(docs: list[Document], pods_only: bool = False) -> list[str]:
    """The promises the k8s manifests make to the pipeline (one rendered overlay); with
    `pods_only`, only the per-pod rules."""
    problems: list[str] = []
    rendered = yaml.safe_dump_all([d.body for d in docs])
    if "placeholder" in rendered:
        problems.append(
            "a placeholder was not replaced (is infra.env / kfp-providers.yaml complete?)"
        )

    for doc in docs:
        for path, pod in pod_specs(doc):
            selector = pod.get("nodeSelector", {})
            on_gpu_pool = selector.get(GPU_POOL_LABEL[0]) == GPU_POOL_LABEL[1]
            if requests_gpu(pod) and not on_gpu_pool:
                problems.append(
                    f"{doc.where()}: {path} requests GPUs but does not select {GPU_POOL_LABEL[0]}={GPU_POOL_LABEL[1]}"
                )
            if on_gpu_pool and not tolerates_gpu_taint(pod):
                problems.append(
                    f"{doc.where()}: {path} selects the GPU pool but does not tolerate {GPU_TAINT_KEY}:NoSchedule"
                )
    if pods_only:
        return problems

    service = find(docs, "Service", "mlflow", "miva")
    if service is None:
        problems.append("Service miva/mlflow is missing")
    elif 5000 not in [p.get("port") for p in service.body.get("spec", {}).get("ports", [])]:
        problems.append("Service miva/mlflow does not expose port 5000")

    mlflow = find(docs, "Deployment", "mlflow", "miva")
    if mlflow is None:
        problems.append("Deployment miva/mlflow is missing")
    else:
        env = {
            e["name"]: e.get("value", "")
            for c in mlflow.body["spec"]["template"]["spec"]["containers"]
            for e in c.get("env", [])
        }
        hosts = [
            h.strip() for h in env.get("MLFLOW_SERVER_ALLOWED_HOSTS", "").split(",") if h.strip()
        ]
        if not hosts or "*" in hosts:
            problems.append(
                "MLflow must set MLFLOW_SERVER_ALLOWED_HOSTS to explicit hosts (no '*')"
            )
        elif "mlflow.miva.svc.cluster.local:5000" not in hosts:
            problems.append(
                "MLflow allowed hosts must include mlflow.miva.svc.cluster.local:5000 (the pipeline's URI)"
            )

    launcher = find(docs, "ConfigMap", "kfp-launcher", PIPELINE_NAMESPACE)
    if launcher is None:
        problems.append(f"ConfigMap {PIPELINE_NAMESPACE}/kfp-launcher is missing")
    else:
        data = launcher.body.get("data", {})
        root = data.get("defaultPipelineRoot", "")
        if not root.startswith("s3://"):
            problems.append(f"kfp-launcher defaultPipelineRoot must be an s3:// URI, got {root!r}")
        try:
            region = yaml.safe_load(data.get("providers", ""))["s3"]["default"]["region"]
        except (yaml.YAMLError, TypeError, KeyError):
            region = None
        if not region:
            problems.append("kfp-launcher providers must give s3.default.region")

    secret = find(docs, "Secret", "miva-mlflow", PIPELINE_NAMESPACE)
    if secret is None or secret_value(secret, "MLFLOW_TRACKING_URI") != MLFLOW_URI:
        problems.append(
            f"Secret {PIPELINE_NAMESPACE}/miva-mlflow must hold MLFLOW_TRACKING_URI={MLFLOW_URI}"
        )

    if find(docs, "ServiceAccount", PIPELINE_SERVICE_ACCOUNT, PIPELINE_NAMESPACE) is None:
        problems.append(
            f"ServiceAccount {PIPELINE_NAMESPACE}/{PIPELINE_SERVICE_ACCOUNT} is missing"
        )

    problems += check_queues(docs)

    for pool in (d for d in docs if d.kind == "NodePool"):
        template = pool.body["spec"]["template"]
        labels = template.get("metadata", {}).get("labels", {})
        taints = template["spec"].get("taints", [])
        if labels.get(GPU_POOL_LABEL[0]) != GPU_POOL_LABEL[1]:
            problems.append(
                f"{pool.where()}: nodes must be labelled {GPU_POOL_LABEL[0]}={GPU_POOL_LABEL[1]}"
            )
        if not any(
            t.get("key") == GPU_TAINT_KEY and t.get("effect") == "NoSchedule" for t in taints
        ):
            problems.append(
                f"{pool.where()}: nodes must carry the {GPU_TAINT_KEY}:NoSchedule taint"
            )
    return problems


QUEUE_RESOURCES = {"cpu", "memory", GPU_TAINT_KEY}


def check_queues(docs: list[Document]) -> list[str]:
    """Kueue, when an overlay has it: the pipeline namespace has a LocalQueue whose
    ClusterQueue exists, admits that namespace and covers GPUs, CPU and memory on flavors
    that exist; a flavor that places pods on GPU nodes matches the pool's label and taint."""
    queues = [d for d in docs if d.api_version.startswith("kueue.x-k8s.io/")]
    if not queues:
        return []
    problems: list[str] = []
    local = [d for d in queues if d.kind == "LocalQueue" and d.namespace == PIPELINE_NAMESPACE]
    if not local:
        problems.append(f"Kueue objects but no LocalQueue in {PIPELINE_NAMESPACE}")
    for lq in local:
        name = lq.body.get("spec", {}).get("clusterQueue", "")
        cq = find(docs, "ClusterQueue", name)
        if cq is None:
            problems.append(f"{lq.where()}: ClusterQueue {name!r} is missing")
            continue
        spec = cq.body.get("spec", {})
        # Kueue: a missing (null) selector admits no namespace, an empty one admits all
        match = spec.get("namespaceSelector")
        if match is None or not selects(match, {"kubernetes.io/metadata.name": PIPELINE_NAMESPACE}):
            problems.append(f"{cq.where()}: namespaceSelector does not admit {PIPELINE_NAMESPACE}")
        covered = {r for g in spec.get("resourceGroups", []) for r in g.get("coveredResources", [])}
        if missing := sorted(QUEUE_RESOURCES - covered):
            problems.append(f"{cq.where()}: no quota for {missing}")
        for group in spec.get("resourceGroups", []):
            for flavor in group.get("flavors", []):
                if find(docs, "ResourceFlavor", flavor.get("name", "")) is None:
                    problems.append(
                        f"{cq.where()}: ResourceFlavor {flavor.get('name')!r} is missing"
                    )
    for rf in (d for d in queues if d.kind == "ResourceFlavor"):
        spec = rf.body.get("spec", {})
        labels = spec.get("nodeLabels", {})
        if labels.get(GPU_POOL_LABEL[0]) != GPU_POOL_LABEL[1]:
            continue  # not the GPU pool's flavor
        taints = spec.get("nodeTaints", [])
        if not any(
            t.get("key") == GPU_TAINT_KEY and t.get("effect") == "NoSchedule" for t in taints
        ):
            problems.append(
                f"{rf.where()}: the GPU pool's flavor must list the {GPU_TAINT_KEY}:NoSchedule taint"
            )
    return problems


# ------------------------------------------------------------------ security contract


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) matches labels."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, operator, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def isolation(docs: list[Document], namespace: str, labels: dict[str, str]) -> set[str]:
    """Policy types ("Ingress", "Egress") for which some NetworkPolicy isolates the pod."""
    types: set[str] = set()
    for policy in docs:
        if policy.kind != "NetworkPolicy" or policy.namespace != namespace:
            continue
        spec = policy.body.get("spec", {})
        if selects(spec.get("podSelector"), labels):
            declared = spec.get("policyTypes") or ["Ingress"]
            types.update(declared)
    return types


def egress_allowed(docs: list[Document], namespace: str, labels: dict[str, str]) -> list[str]:
    """Names of NetworkPolicies that select the pod and allow it some egress."""
    names = []
    for policy in docs:
        if policy.kind != "NetworkPolicy" or policy.namespace != namespace:
            continue
        spec = policy.body.get("spec", {})
        if selects(spec.get("podSelector"), labels) and spec.get("egress"):
            names.append(policy.name)
    return names


def container_problems(container: dict[str, Any], pod_context: dict[str, Any]) -> list[str]:
    """How one container falls short of the restricted profile, or has an unpinned image."""
    name = container.get("name", "?")
    context = container.get("securityContext") or {}
    found = []
    if context.get("allowPrivilegeEscalation") is not False:
        found.append(f"container {name}: allowPrivilegeEscalation must be false")
    if context.get("readOnlyRootFilesystem") is not True:
        found.append(
            f"container {name}: readOnlyRootFilesystem must be true (mount an emptyDir where it writes)"
        )
    if context.get("privileged"):
        found.append(f"container {name}: must not be privileged")
    capabilities = context.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        found.append(f"container {name}: capabilities must drop ALL")
    if capabilities.get("add"):
        found.append(f"container {name}: must not add capabilities {capabilities['add']}")
    if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
        found.append(f"container {name}: runAsNonRoot must be true (pod or container)")
    seccomp = context.get("seccompProfile", pod_context.get("seccompProfile")) or {}
    if seccomp.get("type") != "RuntimeDefault":
        found.append(f"container {name}: seccompProfile must be RuntimeDefault (pod or container)")
    image = str(container.get("image", ""))
    match = PINNED_IMAGE.match(image)
    if match is None or match.group("tag") == "latest":
        found.append(
            f"container {name}: image {image!r} must be pinned as <name>:<tag>@sha256:<digest> (not latest)"
        )
    return found


def check_security(docs: list[Document], pods_only: bool = False) -> list[str]:
    """The security contract of MIVA's own workloads (one rendered overlay).

    Objects labelled app.kubernetes.io/part-of=miva that hold pod templates: restricted
    security context on every container, no service-account token (a pod that calls the
    API says so on its ServiceAccount, not here), images pinned by tag and digest, and
    NetworkPolicies isolating the pods both ways in the namespace they run in; pods
    labelled miva.ai/workload=sandbox (model-written code) allowed no egress at all. Namespaces
    MIVA owns enforce the restricted Pod Security profile. The pipeline pods, which KFP
    creates from the compiled pipeline, must be isolated in the pipeline namespace.
    """
    problems: list[str] = []
    for doc in docs:
        labels = doc.body.get("metadata", {}).get("labels") or {}
        if labels.get(PART_OF[0]) != PART_OF[1]:
            continue
        if doc.kind == "Namespace":
            enforce = labels.get("pod-security.kubernetes.io/enforce")
            if enforce != "restricted":
                problems.append(
                    f"{doc.where()}: label pod-security.kubernetes.io/enforce=restricted is missing"
                )
            continue
        for path, template in pod_templates(doc):
            pod = template["spec"]
            where = f"{doc.where()}: {path}"
            if pod.get("automountServiceAccountToken") is not False:
                problems.append(
                    f"{where}: automountServiceAccountToken must be false (only pods that call the API get a token)"
                )
            pod_context = pod.get("securityContext") or {}
            for container in pod.get("initContainers", []) + pod.get("containers", []):
                problems.extend(f"{where}: {p}" for p in container_problems(container, pod_context))
            namespace = doc.namespace or PIPELINE_NAMESPACE  # cluster-scoped runtimes run there
            pod_labels = (template.get("metadata") or {}).get("labels") or {}
            missing = {"Ingress", "Egress"} - isolation(docs, namespace, pod_labels)
            if missing:
                problems.append(
                    f"{where}: no NetworkPolicy in namespace {namespace} isolates these pods "
                    f"({', '.join(sorted(missing))}); add one selecting labels {pod_labels}"
                )
            if all(pod_labels.get(k) == v for k, v in SANDBOX_LABELS.items()):
                leaks = egress_allowed(docs, namespace, pod_labels)
                if leaks:
                    problems.append(
                        f"{where}: sandbox pods run model-written code and get no egress, "
                        f"but NetworkPolicy {', '.join(leaks)} allows some"
                    )
    if pods_only:  # not an overlay: the pipeline namespace is not in this file
        return problems
    missing = {"Ingress", "Egress"} - isolation(docs, PIPELINE_NAMESPACE, PIPELINE_POD_LABELS)
    if missing:
        problems.append(
            f"no NetworkPolicy in namespace {PIPELINE_NAMESPACE} isolates the pipeline pods "
            f"(label pipeline/runid) for {', '.join(sorted(missing))}"
        )
    return problems


def check_file(
    path: Path, kubernetes_version: str, pods_only: bool = False
) -> tuple[list[tuple[str, str]], list[str]]:
    """([(object, checked by)], problems) for one rendered overlay (or, with `pods_only`,
    any rendered folder)."""
    docs, problems = load_documents(path)
    checked = []
    for doc in docs:
        checker, found = check_schema(doc, kubernetes_version)
        checked.append((f"{doc.kind}/{doc.name}", checker))
        problems.extend(found)
    if docs:
        problems.extend(f"{path}: {p}" for p in check_contract(docs, pods_only))
        problems.extend(f"{path}: {p}" for p in check_security(docs, pods_only))
    return checked, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--kubernetes-version", default="1.33")
    parser.add_argument(
        "--pods-only",
        action="store_true",
        help="schemas, per-pod rules and the security contract, not the whole-overlay contract",
    )
    args = parser.parse_args(argv)
    failed = False
    for path in args.files:
        checked, problems = check_file(path, args.kubernetes_version, args.pods_only)
        status = "ok" if not problems else f"{len(problems)} problem(s)"
        print(f"{path}: {len(checked)} objects, {status}")
        for obj, checker in checked:
            print(f"  {obj:<45} {checker}")
        for problem in problems:
            print(f"  ERROR {problem}")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
