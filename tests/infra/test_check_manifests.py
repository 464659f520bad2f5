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
@pytest.mark.parametrize("overlay", ["dev", "prod", "prod-karpenter"])
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
    launcher = next(
        d
        for d in yaml.safe_load_all(out)
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "kfp-launcher"
    )
    assert launcher["metadata"]["namespace"] == "kubeflow"
    assert launcher["data"]["defaultPipelineRoot"].startswith("s3://miva-")
