"""Kueue in the manifest check: the schemas generated from Kueue's CRDs reject what the API
server would, the queue contract names what is missing, and prod-kueue renders with the
queue objects (the overlay passes everything in test_check_manifests)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPONENT = REPO / "infra" / "k8s" / "components" / "kueue"


def _load(name):
    return yaml.safe_load((COMPONENT / name).read_text())


FLAVOR, QUEUE, LOCAL = (
    _load("resourceflavor.yaml"),
    _load("clusterqueue.yaml"),
    _load("localqueue.yaml"),
)


def _docs(check_manifests, *bodies):
    return [check_manifests.Document("test.yaml", i, b) for i, b in enumerate(bodies)]


def _schema_problems(check_manifests, body):
    (d,) = _docs(check_manifests, body)
    checker, found = check_manifests.check_schema(d, "1.33")
    assert "kueue.x-k8s.io_v1beta2" in checker
    return found


def test_component_objects_pass_their_schemas(check_manifests):
    for body in (FLAVOR, QUEUE, LOCAL):
        assert _schema_problems(check_manifests, body) == []


def test_schema_rejects_the_v1beta1_field_name_and_bad_quantities(check_manifests):
    bad = copy.deepcopy(QUEUE)
    bad["spec"]["cohort"] = bad["spec"].pop("cohortName")  # v1beta1 spelling
    bad["spec"]["resourceGroups"][0]["flavors"][0]["resources"][2]["nominalQuota"] = "eight"
    bad["spec"]["queueingStrategy"] = "Fastest"
    found = " ".join(_schema_problems(check_manifests, bad))
    assert "'cohort' was unexpected" in found
    assert "'eight' does not match" in found
    assert "'Fastest' is not one of" in found
    local = copy.deepcopy(LOCAL)
    local["spec"]["clusterQueue"] = "Miva_GPU"  # not a DNS subdomain name
    assert any("'Miva_GPU' does not match" in p for p in _schema_problems(check_manifests, local))


def test_other_kueue_versions_have_no_schema(check_manifests):
    old = copy.deepcopy(LOCAL)
    old["apiVersion"] = "kueue.x-k8s.io/v1alpha9"
    (d,) = _docs(check_manifests, old)
    checker, found = check_manifests.check_schema(d, "1.33")
    assert checker == "none" and "no schema" in found[0]


def test_queue_contract_names_each_missing_piece(check_manifests):
    assert check_manifests.check_queues(_docs(check_manifests, FLAVOR, QUEUE, LOCAL)) == []

    found = check_manifests.check_queues(_docs(check_manifests, LOCAL))
    assert found == ["test.yaml#0 LocalQueue/miva-gpu: ClusterQueue 'miva-gpu' is missing"]

    elsewhere = copy.deepcopy(LOCAL)
    elsewhere["metadata"]["namespace"] = "team-b"
    found = check_manifests.check_queues(_docs(check_manifests, FLAVOR, QUEUE, elsewhere))
    assert found == ["Kueue objects but no LocalQueue in kubeflow"]

    queue = copy.deepcopy(QUEUE)
    del queue["spec"]["namespaceSelector"]  # Kueue: null admits no namespace at all
    queue["spec"]["resourceGroups"][0]["coveredResources"] = ["cpu", "memory"]
    queue["spec"]["resourceGroups"][0]["flavors"][0]["name"] = "a100"
    found = " | ".join(check_manifests.check_queues(_docs(check_manifests, FLAVOR, queue, LOCAL)))
    assert "namespaceSelector does not admit kubeflow" in found
    assert "no quota for ['nvidia.com/gpu']" in found
    assert "ResourceFlavor 'a100' is missing" in found

    flavor = copy.deepcopy(FLAVOR)
    flavor["spec"]["nodeTaints"] = []
    found = check_manifests.check_queues(_docs(check_manifests, flavor, QUEUE, LOCAL))
    assert found == [
        "test.yaml#0 ResourceFlavor/gpu-pool: the GPU pool's flavor must list the "
        "nvidia.com/gpu:NoSchedule taint"
    ]


def test_without_kueue_objects_nothing_is_asked(check_manifests):
    assert check_manifests.check_queues([]) == []


def test_generator_converts_a_crd_and_the_committed_schema_is_strict():
    """The generator on a small CRD in Kueue's layout, and a spot check of a committed file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "kueue_schemas", REPO / "infra" / "scripts" / "kueue_schemas.py"
    )
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    crd = {
        "spec": {
            "group": "kueue.x-k8s.io",
            "names": {"kind": "LocalQueue"},
            "versions": [
                {
                    "name": "v1beta2",
                    "served": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "clusterQueue": {"type": "string", "maxLength": 253},
                                        "quota": {"x-kubernetes-int-or-string": True},
                                    },
                                    "required": ["clusterQueue"],
                                    "x-kubernetes-validations": [{"rule": "true"}],
                                }
                            },
                        }
                    },
                }
            ],
        }
    }
    schema = gen.kind_schema(crd, "v1beta2")
    assert schema["properties"]["apiVersion"] == {"const": "kueue.x-k8s.io/v1beta2"}
    assert schema["properties"]["spec"]["additionalProperties"] is False
    assert schema["properties"]["spec"]["properties"]["quota"]["type"] == ["integer", "string"]
    assert schema["properties"]["spec"]["required"] == ["clusterQueue"]
    assert "x-kubernetes-validations" not in schema["properties"]["spec"]  # CEL: not offline
    assert schema["required"] == ["apiVersion", "kind", "metadata"]
    committed = json.loads(
        (REPO / "infra" / "k8s" / "schemas" / "kueue.x-k8s.io_v1beta2_localqueue.json").read_text()
    )
    assert committed["properties"]["spec"]["additionalProperties"] is False
    assert committed["properties"]["spec"]["properties"]["clusterQueue"]["maxLength"] == 253


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
def test_prod_kueue_overlay_has_the_queues_with_prod_quotas(tmp_path):
    k8s = tmp_path / "k8s"
    shutil.copytree(REPO / "infra" / "k8s", k8s)
    for example in k8s.glob("overlays/*/*.example"):
        example.with_suffix("").write_text(example.read_text())
    out = subprocess.run(
        ["kubectl", "kustomize", str(k8s / "overlays" / "prod-kueue")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out)}
    queue = docs[("ClusterQueue", "miva-gpu")]
    resources = {
        r["name"]: r for r in queue["spec"]["resourceGroups"][0]["flavors"][0]["resources"]
    }
    assert resources["nvidia.com/gpu"]["nominalQuota"] == "32"
    assert queue["spec"]["cohortName"] == "miva"
    assert docs[("LocalQueue", "miva-gpu")]["metadata"]["namespace"] == "kubeflow"
    assert ("Deployment", "mlflow") in docs  # prod underneath
