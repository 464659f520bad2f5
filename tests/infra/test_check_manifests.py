"""The offline manifest check rejects what it should, and the real overlays pass it."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "d", "namespace": "miva"},
    "spec": {
        "selector": {"matchLabels": {"a": "b"}},
        "template": {
            "metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        },
    },
}

RUNTIME = {
    "apiVersion": "trainer.kubeflow.org/v1alpha1",
    "kind": "ClusterTrainingRuntime",
    "metadata": {"name": "r"},
    "spec": {
        "mlPolicy": {"numNodes": 1, "torch": {}},
        "template": {
            "spec": {
                "replicatedJobs": [
                    {
                        "name": "node",
                        "template": {
                            "spec": {
                                "template": {
                                    "spec": {"containers": [{"name": "node", "image": "x"}]}
                                }
                            }
                        },
                    }
                ]
            }
        },
    },
}

NODEPOOL = {
    "apiVersion": "karpenter.sh/v1",
    "kind": "NodePool",
    "metadata": {"name": "gpu"},
    "spec": {
        "template": {
            "metadata": {"labels": {"miva.ai/pool": "gpu"}},
            "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "x"},
                "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
                "requirements": [
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}
                ],
            },
        },
        "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "10m"},
    },
}


def doc(check_manifests, body):
    return check_manifests.Document("test.yaml", 0, body)


def problems(check_manifests, body):
    _, found = check_manifests.check_schema(doc(check_manifests, body), "1.33")
    return found


def test_valid_objects_pass(check_manifests):
    assert problems(check_manifests, DEPLOYMENT) == []
    assert problems(check_manifests, RUNTIME) == []
    assert problems(check_manifests, NODEPOOL) == []


def test_builtin_kind_with_unknown_field_fails(check_manifests):
    bad = copy.deepcopy(DEPLOYMENT)
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    assert any("imagePullPolicyy" in p for p in problems(check_manifests, bad))


def test_builtin_kind_with_wrong_type_fails(check_manifests):
    bad = copy.deepcopy(DEPLOYMENT)
    bad["spec"]["replicas"] = "two"
    assert problems(check_manifests, bad)


def test_trainer_runtime_with_unknown_field_fails(check_manifests):
    bad = copy.deepcopy(RUNTIME)
    bad["spec"]["mlPolicy"]["torch"]["numProcPerNode"] = "gpu"  # moved to TrainJob in v2.3
    assert problems(check_manifests, bad) == [
        "test.yaml#0 ClusterTrainingRuntime/r: unknown field spec.mlPolicy.torch.numProcPerNode"
    ]


def test_trainer_runtime_with_wrong_type_fails(check_manifests):
    bad = copy.deepcopy(RUNTIME)
    bad["spec"]["mlPolicy"]["numNodes"] = "one"
    assert any("numNodes" in p for p in problems(check_manifests, bad))


def test_nodepool_with_unknown_policy_fails(check_manifests):
    bad = copy.deepcopy(NODEPOOL)
    bad["spec"]["disruption"]["consolidationPolicy"] = "WhenIdle"
    assert any("consolidationPolicy" in p for p in problems(check_manifests, bad))


def test_unknown_kind_is_an_error_not_a_pass(check_manifests):
    body = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert problems(check_manifests, body) == [
        "test.yaml#0 Widget/w: no schema for example.com/v1 Widget"
    ]


def test_gpu_pod_without_toleration_breaks_the_contract(check_manifests):
    body = copy.deepcopy(DEPLOYMENT)
    pod = body["spec"]["template"]["spec"]
    pod["nodeSelector"] = {"miva.ai/pool": "gpu"}
    pod["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    found = check_manifests.check_contract([doc(check_manifests, body)])
    assert any("does not tolerate nvidia.com/gpu" in p for p in found)
    pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    found = check_manifests.check_contract([doc(check_manifests, body)])
    assert not any("tolerate" in p for p in found)


def test_missing_pieces_are_each_reported(check_manifests):
    found = check_manifests.check_contract([doc(check_manifests, DEPLOYMENT)])
    for expected in ["miva/mlflow", "kfp-launcher", "miva-mlflow", "miva-pipeline"]:
        assert any(expected in p for p in found), expected


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
@pytest.mark.parametrize("overlay", ["dev", "prod", "prod-karpenter", "prod-kueue"])
def test_committed_overlays_render_and_pass(check_manifests, tmp_path, overlay):
    k8s = tmp_path / "k8s"
    shutil.copytree(REPO / "infra" / "k8s", k8s)
    for example in k8s.glob("overlays/*/*.example"):
        example.with_suffix("").write_text(example.read_text())
    rendered = tmp_path / f"{overlay}.yaml"
    out = subprocess.run(
        ["kubectl", "kustomize", str(k8s / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rendered.write_text(out)
    checked, found = check_manifests.check_file(rendered, "1.33")
    assert found == []
    kinds = {obj.split("/")[0] for obj, _ in checked}
    assert {"Deployment", "Service", "DaemonSet", "ConfigMap", "ClusterTrainingRuntime"} <= kinds
    policies = {obj.split("/")[1] for obj, _ in checked if obj.startswith("NetworkPolicy/")}
    assert {"default-deny-all", "mlflow", "miva-pipeline-pods", "miva-trainjob-pods"} <= policies
    launcher = next(
        d
        for d in yaml.safe_load_all(out)
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "kfp-launcher"
    )
    assert launcher["metadata"]["namespace"] == "kubeflow"
    assert launcher["data"]["defaultPipelineRoot"].startswith("s3://miva-")


# ------------------------------------------------------------------ security contract

PINNED = "registry.example/miva/miva-base:0.1.0-abc@sha256:" + "a" * 64

RESTRICTED_POD = {
    "automountServiceAccountToken": False,
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "c",
            "image": PINNED,
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
        }
    ],
}

MIVA_DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "d", "namespace": "miva", "labels": {"app.kubernetes.io/part-of": "miva"}},
    "spec": {
        "selector": {"matchLabels": {"app": "d"}},
        "template": {"metadata": {"labels": {"app": "d"}}, "spec": RESTRICTED_POD},
    },
}


def policy(namespace, selector, types=("Ingress", "Egress")):
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": namespace},
        "spec": {"podSelector": selector, "policyTypes": list(types)},
    }


PIPELINE_POLICY = policy(
    "kubeflow", {"matchExpressions": [{"key": "pipeline/runid", "operator": "Exists"}]}
)


def security(check_manifests, *bodies):
    return check_manifests.check_security([doc(check_manifests, b) for b in bodies])


def test_restricted_isolated_pinned_workload_passes(check_manifests):
    assert security(check_manifests, MIVA_DEPLOYMENT, policy("miva", {}), PIPELINE_POLICY) == []


def test_each_missing_restriction_is_reported(check_manifests):
    bad = copy.deepcopy(MIVA_DEPLOYMENT)
    pod = bad["spec"]["template"]["spec"]
    del pod["automountServiceAccountToken"]
    pod["securityContext"] = {}
    pod["containers"][0]["securityContext"] = {"capabilities": {"add": ["NET_ADMIN"]}}
    pod["containers"][0]["image"] = "registry.example/miva/miva-base:latest"
    found = " | ".join(security(check_manifests, bad, policy("miva", {}), PIPELINE_POLICY))
    for expected in [
        "automountServiceAccountToken",
        "allowPrivilegeEscalation",
        "readOnlyRootFilesystem",
        "drop ALL",
        "must not add capabilities",
        "runAsNonRoot",
        "RuntimeDefault",
        "must be pinned",
    ]:
        assert expected in found, expected


@pytest.mark.parametrize(
    "image",
    [
        "registry.example/miva-base:0.1.0",  # tag without digest
        "registry.example/miva-base@sha256:" + "a" * 64,  # digest without tag
        "registry.example/miva-base:latest@sha256:" + "a" * 64,  # latest
        "registry.example/miva-base:0.1.0@sha256:abc",  # short digest
    ],
)
def test_images_need_tag_and_digest(check_manifests, image):
    bad = copy.deepcopy(MIVA_DEPLOYMENT)
    bad["spec"]["template"]["spec"]["containers"][0]["image"] = image
    found = security(check_manifests, bad, policy("miva", {}), PIPELINE_POLICY)
    assert any("must be pinned" in p for p in found)


def test_workload_needs_a_policy_in_its_namespace_both_ways(check_manifests):
    other_namespace = policy("kubeflow", {})
    found = security(check_manifests, MIVA_DEPLOYMENT, other_namespace, PIPELINE_POLICY)
    assert any("no NetworkPolicy in namespace miva" in p and "Egress, Ingress" in p for p in found)
    ingress_only = policy("miva", {"matchLabels": {"app": "d"}}, types=("Ingress",))
    found = security(check_manifests, MIVA_DEPLOYMENT, ingress_only, PIPELINE_POLICY)
    assert any("(Egress)" in p for p in found)


def test_pipeline_pods_must_be_isolated(check_manifests):
    found = security(check_manifests, MIVA_DEPLOYMENT, policy("miva", {}))
    assert any("isolates the pipeline pods" in p for p in found)


def test_trainer_runtime_pods_are_checked_in_the_pipeline_namespace(check_manifests):
    runtime = copy.deepcopy(RUNTIME)
    runtime["metadata"]["labels"] = {"app.kubernetes.io/part-of": "miva"}
    template = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"][
        "template"
    ]
    template["metadata"] = {"labels": {"miva.ai/workload": "trainjob"}}
    template["spec"] = copy.deepcopy(RESTRICTED_POD)
    trainjob_policy = policy("kubeflow", {"matchLabels": {"miva.ai/workload": "trainjob"}})
    assert security(check_manifests, runtime, trainjob_policy, PIPELINE_POLICY) == []
    found = security(check_manifests, runtime, PIPELINE_POLICY)
    assert any("no NetworkPolicy in namespace kubeflow isolates these pods" in p for p in found)


def test_third_party_workloads_are_left_to_the_scanner(check_manifests):
    third_party = copy.deepcopy(DEPLOYMENT)  # no part-of=miva label, runs as root
    assert security(check_manifests, third_party, PIPELINE_POLICY) == []


def test_miva_namespace_must_enforce_restricted_pod_security(check_manifests):
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "miva", "labels": {"app.kubernetes.io/part-of": "miva"}},
    }
    found = security(check_manifests, namespace, PIPELINE_POLICY)
    assert any("pod-security.kubernetes.io/enforce=restricted" in p for p in found)


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": "x"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"b": "x"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"b": "x"}, True),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
            {"a": "2"},
            True,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {"a": "1"},
            False,
        ),
    ],
)
def test_label_selector_semantics(check_manifests, selector, labels, expected):
    assert check_manifests.selects(selector, labels) is expected


def test_sandbox_pods_get_no_egress_at_all(check_manifests):
    sandbox = copy.deepcopy(MIVA_DEPLOYMENT)
    sandbox["spec"]["template"]["metadata"]["labels"] = {"miva.ai/workload": "sandbox"}
    isolated = policy("miva", {"matchLabels": {"miva.ai/workload": "sandbox"}})
    assert security(check_manifests, sandbox, isolated, PIPELINE_POLICY) == []
    dns = policy("miva", {})
    dns["metadata"]["name"] = "allow-dns"
    dns["spec"]["egress"] = [{"ports": [{"protocol": "UDP", "port": 53}]}]
    found = security(check_manifests, sandbox, isolated, dns, PIPELINE_POLICY)
    assert any("sandbox pods" in p and "allow-dns" in p for p in found)
