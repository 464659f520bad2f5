"""The KServe InferenceService: rendered for both runtimes with a restricted pod, checked
offline (our KServe schema + the Kubernetes Pod schema), errors caught, the static
serving folder valid, and `miva registry deploy` on the local SQLite registry."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from miva.config import load_config
from miva.errors import MivaError
from miva.registry.deploy import render_manifest
from tests.infra.conftest import load_script

REPO = Path(__file__).resolve().parents[2]
SERVING = REPO / "infra" / "k8s" / "serving"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def check():
    return load_script("infra/scripts/check_manifests.py", "miva_check_manifests_deploy")


def manifest(runtime="miva", source=None, *overrides):
    cfg = load_config(
        "tiny-cpu",
        [
            f"registry.deploy.runtime={runtime}",
            f"registry.deploy.image_digest={DIGEST}",
            "pipeline.image_tag=0.1.0-abc",
            f"registry.deploy.huggingface_image=kserve/huggingfaceserver:v0.20.0-gpu@{DIGEST}",
            *overrides,
        ],
    )
    return render_manifest(cfg, "models:/miva-agent/4", "4", "champion", source)


def problems(check, body):
    """Schema, per-pod rules and the security contract, next to the serving namespace and
    NetworkPolicy the manifest is deployed with."""
    doc = check.Document("test", 0, body)
    context = [
        check.Document(name, 0, yaml.safe_load((SERVING / name).read_text()))
        for name in ("namespace.yaml", "networkpolicy.yaml")
    ]
    return (
        check.check_schema(doc, "1.33")[1]
        + check.check_contract([doc], pods_only=True)
        + check.check_security([doc, *context], pods_only=True)
    )


def test_miva_runtime_renders_a_restricted_gpu_pod(check):
    m = manifest()
    assert problems(check, m) == []
    pred = m["spec"]["predictor"]
    assert pred["securityContext"]["runAsNonRoot"] is True
    assert pred["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = pred["containers"]
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {v["mountPath"] for v in c["volumeMounts"]} == {"/tmp", "/dev/shm"}
    assert all(p in c for p in ("startupProbe", "readinessProbe", "livenessProbe"))
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert c["resources"]["requests"] == c["resources"]["limits"]
    assert c["image"] == f"ghcr.io/miva-project/miva-gpu:0.1.0-abc@{DIGEST}"
    assert pred["automountServiceAccountToken"] is False
    assert c["args"][:2] == ["serve", "models:/miva-agent/4"]
    assert pred["nodeSelector"] == {"miva.ai/pool": "gpu"}
    assert m["metadata"]["annotations"]["miva.ai/model-alias"] == "models:/miva-agent@champion"


def test_the_image_is_the_pipelines_gpu_image():
    from miva.pipeline.images import image_ref
    from miva.registry.deploy import gpu_image

    cfg = load_config(
        "tiny-cpu", ["pipeline.image_registry=reg.io/acme/", "pipeline.image_tag=v1.2"]
    )
    assert gpu_image(cfg) == image_ref("reg.io/acme/", "gpu", "v1.2") == "reg.io/acme/miva-gpu:v1.2"
    cfg.registry.deploy.image_digest = DIGEST
    assert gpu_image(cfg) == f"reg.io/acme/miva-gpu:v1.2@{DIGEST}"


def test_huggingface_runtime_needs_the_s3_folder(check):
    m = manifest("huggingface", "s3://bucket/models/grpo")
    assert problems(check, m) == []
    model = m["spec"]["predictor"]["model"]
    assert model["storageUri"] == "s3://bucket/models/grpo"
    assert model["modelFormat"] == {"name": "huggingface"} and "--backend=vllm" in model["args"]
    with pytest.raises(MivaError, match="huggingface runtime reads"):
        manifest("huggingface", "/home/me/models/grpo")


def test_cpu_serving_leaves_the_gpu_pool_alone(check):
    m = manifest("miva", None, "registry.deploy.gpu_count=0")
    assert problems(check, m) == []
    assert "nodeSelector" not in m["spec"]["predictor"]


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda p: p.update(scaleMetric="gpu"), "scaleMetric"),
        (lambda p: p.update(minReplicas="one"), "minReplicas"),
        (lambda p: p.update(replicas=2), "replicas"),
        (
            lambda p: p["containers"][0]["securityContext"].update(readOnlyRootFs=True),
            "readOnlyRootFs",
        ),
        (lambda p: p["containers"][0].update(ports=[{"containerPort": "http"}]), "containerPort"),
        (lambda p: p["securityContext"].update(runAsUser="root"), "runAsUser"),
        (lambda p: p.pop("containers"), "neither containers nor a model"),
        (lambda p: p.pop("tolerations"), "does not tolerate"),
        (lambda p: p["containers"][0].update(image="reg.io/miva-gpu:1.0"), "must be pinned"),
        (lambda p: p.pop("automountServiceAccountToken"), "automountServiceAccountToken"),
        (lambda p: p.update(labels={"app.kubernetes.io/part-of": "other"}), "isolates"),
    ],
)
def test_the_check_catches_mistakes(check, mutate, fragment):
    m = copy.deepcopy(manifest())
    mutate(m["spec"]["predictor"])
    found = problems(check, m)
    assert found and any(fragment in p for p in found), found


def test_static_serving_folder_is_valid(check):
    """The folder as kustomize renders it: GPU_IMAGE from serving.env replaces the image
    (make infra-validate runs kustomize itself; here the replacement is applied by hand)."""
    kustomization = yaml.safe_load((SERVING / "kustomization.yaml").read_text())
    docs = [yaml.safe_load((SERVING / name).read_text()) for name in kustomization["resources"]]
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "ServiceAccount", "NetworkPolicy", "InferenceService"} <= kinds
    env = dict(
        line.split("=", 1)
        for line in (SERVING / "serving.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    (isvc,) = [d for d in docs if d["kind"] == "InferenceService"]
    isvc["spec"]["predictor"]["containers"][0]["image"] = env["GPU_IMAGE"]
    rendered = [check.Document(f"serving#{i}", i, d) for i, d in enumerate(docs)]
    for doc in rendered:
        assert check.check_schema(doc, "1.33")[1] == [], doc.kind
    assert check.check_contract(rendered, pods_only=True) == []
    assert check.check_security(rendered, pods_only=True) == []


def test_registry_deploy_cli_on_the_local_registry(tmp_path, monkeypatch, capsys):
    from miva.agent.model import resolve
    from miva.cli import main
    from miva.registry import registry as reg

    model = Path(resolve("tiny-random")).resolve()
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "MIVA_PARENT_RUN_ID", "KFP_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    cfg = load_config("tiny-cpu")
    assert main(["registry", "deploy"]) != 0  # nothing registered yet: a clear error
    assert "no 'champion' version" in capsys.readouterr().err
    reg.register_model(cfg, model, {"eval/test/overall/accuracy": 0.5}, eval_digest="d")
    out = tmp_path / "isvc.yaml"
    assert main(["registry", "deploy", "--output", str(out)]) == 0
    body = yaml.safe_load(out.read_text())
    assert body["metadata"]["labels"]["miva.ai/model-version"] == "1"
    assert "wrote" in capsys.readouterr().out


def test_register_stage_deploys_a_new_champion_on_promotion(tmp_path, monkeypatch):
    import json

    from miva.agent.model import resolve
    from miva.stages import register

    model = Path(resolve("tiny-random")).resolve()
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "MIVA_PARENT_RUN_ID", "KFP_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    out = tmp_path / "isvc.yaml"
    cfg = load_config(
        "tiny-cpu", ["registry.deploy.on_promotion=true", f"registry.deploy.output={out}"]
    )
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"eval/test/overall/accuracy": 0.5, "eval/test/digest": "d"}))
    result = register(cfg, model, metrics)
    assert result.value.deployed == str(out)
    assert result.details[-1] == f"the new champion's InferenceService: {out}"
    assert yaml.safe_load(out.read_text())["metadata"]["labels"]["miva.ai/model-version"] == "1"
