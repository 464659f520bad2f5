"""The sandbox service's kustomize manifests (infra/k8s/sandbox): they render, every object
passes the Kubernetes schemas, and the pods are locked down as docs/sandbox.md says."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SANDBOX = REPO / "infra" / "k8s" / "sandbox"


def _render(folder: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip(
            "kubectl (with kustomize v5) is not installed; `make infra-validate` installs it"
        )
    out = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module", params=["base", "overlays/gvisor"])
def rendered(request):
    return request.param, _render(SANDBOX / request.param)


def _one(docs, kind, name):
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def test_every_object_passes_the_kubernetes_schemas(rendered, check_manifests):
    _, docs = rendered
    for i, body in enumerate(docs):
        doc = check_manifests.Document("sandbox", i, body)
        checker, problems = check_manifests.check_schema(doc, "1.33")
        assert checker != "none" and problems == [], (checker, problems)


def test_the_pods_are_restricted(rendered):
    variant, docs = rendered
    deployment = _one(docs, "Deployment", "miva-sandbox")
    assert deployment["metadata"]["labels"]["app.kubernetes.io/part-of"] == "miva"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    ctx = container["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False and ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    image = container["image"]
    assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["command"][:3] == ["miva", "sandbox", "serve"]
    # the only writable place is an emptyDir of bounded size
    assert [v["emptyDir"]["sizeLimit"] for v in pod["volumes"]] == ["256Mi"]
    namespace = _one(docs, "Namespace", "miva-sandbox")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    account = _one(docs, "ServiceAccount", "miva-sandbox")
    assert account["automountServiceAccountToken"] is False
    assert (pod.get("runtimeClassName") == "gvisor") == (variant == "overlays/gvisor")


def test_the_sandbox_pods_send_nothing(rendered):
    _, docs = rendered
    pod_labels = _one(docs, "Deployment", "miva-sandbox")["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["miva.ai/workload"] == "sandbox"
    selecting = [
        d
        for d in docs
        if d["kind"] == "NetworkPolicy"
        and d["metadata"]["namespace"] == "miva-sandbox"
        and all(
            pod_labels.get(k) == v
            for k, v in d["spec"]["podSelector"].get("matchLabels", {}).items()
        )
    ]
    assert selecting, "no NetworkPolicy selects the sandbox pods"
    assert any(set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} for p in selecting)
    assert all(not p["spec"].get("egress") for p in selecting)  # no egress rule at all
    assert {p["metadata"]["name"] for p in selecting} == {"default-deny-all", "miva-sandbox"}
    (ingress,) = _one(docs, "NetworkPolicy", "miva-sandbox")["spec"]["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_the_gvisor_variant_adds_its_runtime_class():
    docs = _render(SANDBOX / "overlays" / "gvisor")
    assert _one(docs, "RuntimeClass", "gvisor")["handler"] == "runsc"


def test_the_security_contract_of_the_manifest_check(rendered, check_manifests):
    """The contract `make infra-validate` enforces on MIVA's workloads, applied to the
    sandbox alone. Two findings belong to the environment that includes it, not to these
    manifests: the image digest (an environment pins tag and digest from images/tags.env)
    and the pipeline pods' own ingress isolation (their NetworkPolicy lives in base/pipeline)."""
    _, docs = rendered
    found = check_manifests.check_security(
        [check_manifests.Document("sandbox", i, d) for i, d in enumerate(docs)]
    )
    left = [
        p
        for p in found
        if "must be pinned as <name>:<tag>@sha256" not in p
        and "isolates the pipeline pods" not in p
    ]
    assert left == []
    assert any("@sha256" in p for p in found)  # the check did look at the image
