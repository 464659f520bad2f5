"""The compiled pipeline YAML: images, GPU requests, tolerations, node selectors, /dev/shm,
secrets, caching, retries and the dsl.If around SFT, read back from the YAML itself."""

from __future__ import annotations

import re

import pytest
import yaml

from miva.config import load_config
from miva.pipeline import submit
from miva.pipeline.images import GPU_STAGES, STAGE_IMAGE

OVERRIDES = [
    "pipeline.image_registry=reg.example/team",
    "pipeline.image_tag=0.1.0-abc1234",
    "pipeline.gpu_count=2",
    "pipeline.shm_size=8Gi",
]


def _compile(tmp_path, overrides):
    cfg = load_config("tiny-cpu", overrides)
    path = submit.compile_pipeline(cfg, "tiny-cpu", overrides, tmp_path / "pipeline.yaml")
    spec, platform = yaml.safe_load_all(path.read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    return _compile(tmp_path_factory.mktemp("c"), OVERRIDES)


def _tasks(spec):
    """Every task in every DAG: (dag component, task name, task spec, executor label)."""
    dags = {"root": spec["root"]} | {k: v for k, v in spec["components"].items() if "dag" in v}
    for dag_name, comp in dags.items():
        for name, task in comp["dag"]["tasks"].items():
            ref = task["componentRef"]["name"]
            label = spec["components"][ref].get("executorLabel")
            yield dag_name, name, task, label


def _stage(task_name: str) -> str:
    return re.sub(r"-\d+$", "", task_name)


def test_every_stage_runs_on_its_image(compiled):
    spec, _ = compiled
    executors = spec["deploymentSpec"]["executors"]
    assert (
        executors["exec-configure"]["container"]["image"]
        == "reg.example/team/miva-base:0.1.0-abc1234"
    )
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["image_registry"]["defaultValue"] == "reg.example/team"
    assert params["image_tag"]["defaultValue"] == "0.1.0-abc1234"
    seen = set()
    for _, name, _, label in _tasks(spec):
        if label is None or name == "configure":
            continue
        kind = STAGE_IMAGE[_stage(name)]
        image = executors[label]["container"]["image"]
        assert image == f"{{{{$.inputs.parameters['pipelinechannel--configure-{kind}_image']}}}}", (
            name
        )
        seen.add(_stage(name))
    assert seen == {"synthesize", "validate", "sft", "grpo", "evaluate", "register"}


def test_image_digests_pin_the_configure_step_and_travel_to_the_plan(tmp_path):
    digest = "sha256:" + "3" * 64
    spec, _ = _compile(tmp_path, [*OVERRIDES, f"pipeline.image_digests.base={digest}"])
    executors = spec["deploymentSpec"]["executors"]
    image = executors["exec-configure"]["container"]["image"]
    assert image == f"reg.example/team/miva-base:0.1.0-abc1234@{digest}"
    overrides = spec["root"]["inputDefinitions"]["parameters"]["overrides"]["defaultValue"]
    assert f"pipeline.image_digests.base={digest}" in overrides  # the plan resolves the rest


def test_no_pip_install_at_run_time(compiled):
    spec, _ = compiled
    for label, ex in spec["deploymentSpec"]["executors"].items():
        command = " ".join(ex["container"]["command"])
        assert "pip install" not in command, label


def test_gpu_stages_request_gpus_tolerate_taint_select_pool_and_mount_shm(compiled):
    spec, k8s = compiled
    executors = spec["deploymentSpec"]["executors"]
    for _, name, _, label in _tasks(spec):
        if label is None:
            continue
        resources = executors[label]["container"].get("resources", {})
        if _stage(name) in GPU_STAGES:
            assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu", name
            assert resources["accelerator"]["resourceCount"] == "2", name
            cfg = k8s[label]
            assert cfg["tolerations"] == [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ]
            assert cfg["nodeSelector"]["labels"] == {"miva.ai/pool": "gpu"}
            assert cfg["emptyDirMounts"] == [
                {
                    "volumeName": "dshm",
                    "mountPath": "/dev/shm",
                    "medium": "Memory",
                    "sizeLimit": "8Gi",
                }
            ]
        else:
            assert "accelerator" not in resources, name
            assert "tolerations" not in k8s.get(label, {}), name


def test_credentials_come_from_secrets(compiled):
    spec, k8s = compiled
    for _, name, _, label in _tasks(spec):
        if label is None or name == "configure":
            continue
        secrets = {
            (s["secretName"], e["envVar"]) for s in k8s[label]["secretAsEnv"] for e in s["keyToEnv"]
        }
        assert ("miva-mlflow", "MLFLOW_TRACKING_URI") in secrets, name
        assert ("miva-s3", "AWS_SECRET_ACCESS_KEY") in secrets, name


def test_caching_on_data_stages_and_retries_on_network_stages(compiled):
    spec, _ = compiled
    for _, name, task, label in _tasks(spec):
        if label is None:
            continue
        stage = _stage(name)
        cached = task.get("cachingOptions", {}).get("enableCache", False)
        assert cached == (stage in {"synthesize", "validate"}), name
        retries = task.get("retryPolicy", {}).get("maxRetryCount", 0)
        assert retries == (2 if stage in {"synthesize", "evaluate", "register"} else 0), name


def test_every_stage_gets_the_kfp_run_id_and_task_name_outside_its_cache_key(compiled):
    spec, k8s = compiled
    executors = spec["deploymentSpec"]["executors"]
    run_id_env = {"name": "KFP_RUN_ID", "fieldPath": "metadata.labels['pipeline/runid']"}
    for _, name, task, label in _tasks(spec):
        if label is None or name == "configure":
            continue
        env = {e["name"]: e["value"] for e in executors[label]["container"]["env"]}
        assert env["KFP_TASK_NAME"] == _stage(name)
        assert run_id_env in k8s[label]["fieldPathAsEnv"]
        # run-specific values are not inputs, so a cached data stage hits across runs
        params = task["inputs"]["parameters"]
        assert {"preset", "overrides"} <= set(params)
        assert not any("run_id" in p or "task_name" in p for p in params)


def test_sft_sits_inside_the_if_and_grpo_starts_from_its_model(compiled):
    spec, _ = compiled
    where = {}
    for dag, name, task, label in _tasks(spec):
        if label is not None:
            where.setdefault(_stage(name), []).append((dag, task))
    ((sft_dag, _),) = where["sft"]
    # the task that runs sft's DAG is the `dsl.If` branch, triggered by configure's decision
    (branch,) = [t for _, _, t, _ in _tasks(spec) if t["componentRef"]["name"] == sft_dag]
    assert "sft_enabled" in branch["triggerPolicy"]["condition"]
    grpos = {dag: task for dag, task in where["grpo"]}
    assert set(grpos) == {sft_dag, next(d for d in grpos if d != sft_dag)}
    assert (
        grpos[sft_dag]["inputs"]["artifacts"]["start_model"]["taskOutputArtifact"]["producerTask"]
        == "sft"
    )
    other = next(t for d, t in grpos.items() if d != sft_dag)
    assert "start_model" not in other["inputs"].get("artifacts", {})


def test_multi_node_grpo_submits_from_a_cpu_pod(tmp_path):
    spec, k8s = _compile(tmp_path, [*OVERRIDES, "pipeline.num_nodes=3"])
    executors = spec["deploymentSpec"]["executors"]
    for _, name, task, label in _tasks(spec):
        if label is not None and _stage(name) == "grpo":
            assert "accelerator" not in executors[label]["container"].get("resources", {})
            assert "base_image" in executors[label]["container"]["image"]
            assert "tolerations" not in k8s[label]
            assert task["inputs"]["parameters"]["train_image"]["componentInputParameter"].endswith(
                "gpu_image"
            )


def test_compiled_package_loads_back_as_a_pipeline(tmp_path):
    """The YAML parses into the PipelineSpec protobuf (what the KFP API server does on upload)."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    cfg = load_config("tiny-cpu")
    path = submit.compile_pipeline(cfg, "tiny-cpu", [], tmp_path / "p.yaml")
    spec, platform = yaml.safe_load_all(path.read_text())
    parsed = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    assert parsed.pipeline_info.name == "miva" and parsed.schema_version == "2.1.0"
    json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec())
