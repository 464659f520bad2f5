"""Multi-node GRPO: the rendered TrainJob and its submit/poll logic against a stand-in API."""

from __future__ import annotations

import pytest

from miva.config import load_config
from miva.pipeline import trainjob
from miva.pipeline.trainjob import TrainJobError, render_trainjob, train_args, trainjob_name
from tests.infra.conftest import load_script
from tests.pipeline.standin import StandIn

OVERRIDES = ["pipeline.num_nodes=4", "pipeline.gpu_count=8", "grpo.lr=1e-6"]


@pytest.fixture
def cfg():
    return load_config("qwen2.5-vl-7b-gpu", OVERRIDES)


def _manifest(cfg):
    args = train_args(
        "qwen2.5-vl-7b-gpu",
        OVERRIDES,
        "s3://b/run/validate/validated/clean",
        "s3://b/run/grpo/model",
    )
    return render_trainjob(
        cfg,
        name=trainjob_name("run-1", "grpo"),
        namespace="team-a",
        image="reg.example/miva-gpu:0.1.0-abc",
        args=args,
        run_id="run-1",
        task_name="grpo",
    )


def test_manifest_runs_the_train_image_with_the_same_arguments(cfg):
    m = _manifest(cfg)
    assert m["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and m["kind"] == "TrainJob"
    assert m["metadata"]["namespace"] == "team-a"
    assert m["spec"]["runtimeRef"] == {
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
        "name": "miva-torch-distributed",
    }
    t = m["spec"]["trainer"]
    assert t["image"] == "reg.example/miva-gpu:0.1.0-abc"
    assert t["command"] == ["torchrun", "-m", "miva.cli"]
    assert t["args"] == [
        "grpo", "-c", "qwen2.5-vl-7b-gpu",
        "--set", "pipeline.num_nodes=4", "--set", "pipeline.gpu_count=8", "--set", "grpo.lr=1e-6",
        "--dataset", "s3://b/run/validate/validated/clean", "--out", "s3://b/run/grpo/model",
    ]  # fmt: skip
    assert t["numNodes"] == 4 and t["numProcPerNode"] == 8
    assert t["resourcesPerNode"]["limits"] == {"nvidia.com/gpu": "8"}


def test_manifest_schedules_on_gpu_pool_with_shm_and_secrets(cfg):
    m = _manifest(cfg)
    (patch,) = m["spec"]["runtimePatches"]
    assert patch["manager"] == "miva.ai/grpo"
    (job,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert job["name"] == "node"
    spec = job["template"]["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"miva.ai/pool": "gpu"}
    assert spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert spec["serviceAccountName"] == "miva-pipeline"
    assert spec["volumes"] == [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}
    ]
    assert spec["containers"][0]["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]
    env = {e["name"]: e for e in m["spec"]["trainer"]["env"]}
    assert env["KFP_RUN_ID"]["value"] == "run-1" and env["KFP_TASK_NAME"]["value"] == "grpo"
    tracking = env["MLFLOW_TRACKING_URI"]["valueFrom"]["secretKeyRef"]
    assert tracking == {"name": "miva-mlflow", "key": "MLFLOW_TRACKING_URI", "optional": False}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "miva-s3"


def test_manifest_is_valid_against_the_trainer_api(cfg):
    """The Trainer v2.3 API models accept every field we render (none dropped as unknown)."""
    check_manifests = load_script("infra/scripts/check_manifests.py", "miva_infra_check_manifests")
    m = _manifest(cfg)
    assert check_manifests.check_trainer(check_manifests.Document("trainjob", 0, m)) == []
    m["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0][
        "template"
    ]["spec"]["template"]["spec"]["hostNetwork"] = True  # not a field managers may patch
    (problem,) = check_manifests.check_trainer(check_manifests.Document("trainjob", 0, m))
    assert "unknown field" in problem and "hostNetwork" in problem


def test_name_is_stable_per_run_and_task_and_dns_safe():
    a, b = trainjob_name("run-1", "grpo"), trainjob_name("run-1", "grpo")
    assert a == b and a != trainjob_name("run-2", "grpo")
    assert len(a) <= 63 and a.replace("-", "").isalnum() and a[0].isalpha()


def test_job_state_reads_conditions():
    failed = {"status": {"conditions": [
        {"type": "Created", "status": "True"},
        {"type": "Failed", "status": "True", "reason": "TrainingFailed", "message": "node-0 OOMKilled"},
    ]}}  # fmt: skip
    assert trainjob.job_state(failed) == ("Failed", "TrainingFailed: node-0 OOMKilled")
    assert trainjob.job_state({"status": {}}) == ("Pending", "")
    done = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert trainjob.job_state(done)[0] == "Complete"


def _api(url: str):
    from kubernetes import client

    conf = client.Configuration()
    conf.host = url
    return client.CustomObjectsApi(client.ApiClient(conf))


def _status(*conditions):
    return {"status": {"conditions": [dict(c, status="True") for c in conditions]}}


def test_submit_and_follow_until_complete_against_standin_api(cfg):
    polls = iter([
        _status(),
        _status({"type": "Created", "reason": "JobSetCreated"}),
        _status({"type": "Created"}, {"type": "Complete", "reason": "JobSetFinished"}),
    ])  # fmt: skip
    with StandIn() as api_server:
        api_server.route("POST", "/apis/trainer.kubeflow.org/v1alpha1/namespaces/team-a/trainjobs",
                         lambda r: (201, r.body))  # fmt: skip
        api_server.route("GET", "/apis/trainer.kubeflow.org/", lambda r: (200, next(polls)))
        api = _api(api_server.url)
        name = trainjob.submit(api, _manifest(cfg))
        lines: list[str] = []
        trainjob.wait(api, "team-a", name, poll_s=0, log=lines.append, sleep=lambda s: None)
    post = api_server.requests[0]
    assert post.method == "POST" and post.body["metadata"]["name"] == name
    assert post.body["spec"]["trainer"]["numNodes"] == 4
    assert api_server.requests[1].path.endswith(f"/trainjobs/{name}")
    assert lines[0].endswith("Pending") and "Created (JobSetCreated)" in lines[1]
    assert "Complete" in lines[-1] and len(lines) == 3


def test_failed_job_raises_its_own_error(cfg):
    with StandIn() as api_server:
        api_server.route("POST", "/apis/", lambda r: (201, r.body))
        api_server.route("GET", "/apis/", lambda r: (200, _status(
            {"type": "Failed", "reason": "TrainingFailed", "message": "rank 3: CUDA out of memory"})))  # fmt: skip
        api = _api(api_server.url)
        name = trainjob.submit(api, _manifest(cfg))
        with pytest.raises(
            TrainJobError, match="failed: TrainingFailed: rank 3: CUDA out of memory"
        ):
            trainjob.wait(api, "team-a", name, poll_s=0, log=lambda s: None, sleep=lambda s: None)


def test_existing_job_is_followed_and_rejection_is_explained(cfg):
    with StandIn() as api_server:
        api_server.route("POST", "/apis/", lambda r: (409, {"message": "already exists"}))
        assert trainjob.submit(_api(api_server.url), _manifest(cfg)).startswith("miva-grpo-")
    with StandIn() as api_server:
        api_server.route("POST", "/apis/", lambda r: (
            422, {"message": "spec.runtimeRef: ClusterTrainingRuntime miva-torch-distributed not found"}))  # fmt: skip
        with pytest.raises(TrainJobError, match="HTTP 422.*miva-torch-distributed not found"):
            trainjob.submit(_api(api_server.url), _manifest(cfg))


def test_multi_node_needs_s3_artifacts(cfg, tmp_path):
    with pytest.raises(TrainJobError, match="s3:// pipeline root"):
        trainjob.train_distributed(
            cfg, preset="qwen2.5-vl-7b-gpu", overrides="[]", image="img",
            dataset_uri=str(tmp_path / "clean"), out_uri=str(tmp_path / "model"),
            local_out=str(tmp_path / "model"), api=object(),
        )  # fmt: skip


def test_a_batch_the_ranks_cannot_split_fails_before_submitting(tmp_path):
    from miva.errors import ConfigError

    cfg = load_config("qwen2.5-vl-7b-gpu", ["pipeline.num_nodes=3", "pipeline.gpu_count=8"])
    with pytest.raises(ConfigError, match="not divisible by the 24 training processes"):
        trainjob.train_distributed(
            cfg, preset="qwen2.5-vl-7b-gpu", overrides="[]", image="img",
            dataset_uri="s3://b/clean", out_uri="s3://b/model",
            local_out=str(tmp_path / "model"), api=object(),
        )  # fmt: skip


def test_train_distributed_submits_follows_and_copies_the_model(cfg, tmp_path, monkeypatch):
    """The grpo component's multi-node path: TrainJob on a stand-in Kubernetes API, artifacts
    on a real local S3 endpoint (moto server); the trained model lands in the local output."""
    from tests.servers import MotoS3

    s3 = MotoS3().start()
    try:
        for name, value in {
            "AWS_ENDPOINT_URL_S3": s3.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
        s3.create_bucket("runs")
        # what the TrainJob's rank 0 would have written to the output URI
        s3.client().put_object(Bucket="runs", Key="r/grpo/model/config.json", Body=b'{"a": 1}')
        monkeypatch.setattr(cfg.pipeline, "trainjob_poll_s", 0.01)
        with StandIn() as api_server:
            api_server.route("POST", "/apis/", lambda r: (201, r.body))
            api_server.route("GET", "/apis/", lambda r: (200, _status({"type": "Complete"})))
            name = trainjob.train_distributed(
                cfg,
                preset="qwen2.5-vl-7b-gpu",
                overrides='["pipeline.num_nodes=4"]',
                image="reg.example/miva-gpu:t",
                dataset_uri="s3://runs/r/validate/validated/clean",
                out_uri="s3://runs/r/grpo/model",
                local_out=str(tmp_path / "model"),
                start_model_uri="s3://runs/r/sft/model",
                run_id="run-9",
                task_name="grpo",
                api=_api(api_server.url),
            )
    finally:
        s3.stop()
    assert name == trainjob_name("run-9", "grpo")
    body = api_server.requests[0].body
    assert body["spec"]["trainer"]["args"][-2:] == ["--model", "s3://runs/r/sft/model"]
    assert body["spec"]["trainer"]["args"][:5] == [
        "grpo",
        "-c",
        "qwen2.5-vl-7b-gpu",
        "--set",
        "pipeline.num_nodes=4",
    ]
    assert (tmp_path / "model" / "config.json").read_text() == '{"a": 1}'
