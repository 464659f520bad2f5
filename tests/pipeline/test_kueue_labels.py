"""`pipeline.kueue_queue`: the GPU tasks of the main and the sweep DAG and the multi-node
TrainJob carry Kueue's queue label; CPU tasks and a config without a queue carry none."""

from __future__ import annotations

import pytest
import yaml

from miva.config import KUEUE_QUEUE_LABEL, load_config
from miva.errors import ConfigError
from miva.pipeline import submit
from miva.pipeline.images import GPU_STAGES
from miva.pipeline.sweep import SweepSpec
from miva.pipeline.trainjob import render_trainjob

QUEUE = ["pipeline.kueue_queue=miva-gpu"]


def _executors(tmp_path, overrides, sweep=None):
    cfg = load_config("tiny-cpu", overrides)
    path = submit.compile_pipeline(cfg, "tiny-cpu", overrides, tmp_path / "p.yaml", sweep=sweep)
    _, platform = yaml.safe_load_all(path.read_text())
    return platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _queue_labels(executors):
    """executor -> the queue label value (None when the pod carries no queue label)."""
    return {
        name: ex.get("podMetadata", {}).get("labels", {}).get(KUEUE_QUEUE_LABEL)
        for name, ex in executors.items()
    }


def _stage(executor: str) -> str:
    name = executor.removeprefix("exec-")
    return name.rsplit("-", 1)[0] if name[-1].isdigit() else name


def test_gpu_tasks_of_the_main_dag_join_the_queue(tmp_path):
    labels = _queue_labels(_executors(tmp_path, QUEUE))
    for executor, value in labels.items():
        stage = _stage(executor).replace("-", "_")
        assert value == ("miva-gpu" if stage in GPU_STAGES else None), executor
    assert {_stage(e) for e, v in labels.items() if v} == {"sft", "grpo", "evaluate"}


def test_sweep_trials_join_the_queue(tmp_path):
    spec = SweepSpec.model_validate({"parameters": {"grpo.lr": [1e-5, 3e-5]}})
    labels = _queue_labels(_executors(tmp_path, QUEUE, sweep=spec))
    assert labels["exec-sweep-trial"] == "miva-gpu"
    assert labels["exec-evaluate"] == "miva-gpu"
    assert labels["exec-sweep-select"] is None and labels["exec-register"] is None


def test_no_queue_no_label(tmp_path):
    assert not any(_queue_labels(_executors(tmp_path, [])).values())


def test_multi_node_grpo_trainjob_carries_the_label_its_submitter_does_not(tmp_path):
    overrides = [*QUEUE, "pipeline.num_nodes=2"]
    labels = _queue_labels(_executors(tmp_path, overrides))
    assert [v for e, v in labels.items() if _stage(e) == "grpo"] == [None, None]  # CPU pods
    cfg = load_config("qwen2.5-vl-7b-gpu", overrides)
    job = render_trainjob(
        cfg, name="j", namespace="kubeflow", image="i", args=[], run_id="r", task_name="grpo"
    )
    assert job["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "miva-gpu"
    job = render_trainjob(
        load_config("qwen2.5-vl-7b-gpu", ["pipeline.num_nodes=2"]),
        name="j",
        namespace="kubeflow",
        image="i",
        args=[],
        run_id="r",
        task_name="grpo",
    )
    assert KUEUE_QUEUE_LABEL not in job["metadata"]["labels"]


@pytest.mark.parametrize("bad", ["Miva_GPU", "-gpu", "x" * 64])
def test_queue_name_must_be_a_label_value(bad):
    with pytest.raises(ConfigError, match="kueue_queue"):
        load_config("tiny-cpu", [f"pipeline.kueue_queue={bad}"])
