"""The zero-setup default: MLflow on a SQLite file under ./.miva with local artifacts."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from miva.config import load_config
from miva.registry import registry as reg
from miva.registry.tracking import experiment_id, pipeline_run, stage_run, tracking_uri


@pytest.fixture
def local_cfg(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MIVA_PARENT_RUN_ID", raising=False)
    monkeypatch.delenv("KFP_RUN_ID", raising=False)
    return load_config("tiny-cpu")


def test_local_sqlite_default_with_parent_child_runs(local_cfg, tmp_path, monkeypatch):
    from miva.agent.model import resolve

    repo_cache = Path(__file__).resolve().parents[2] / ".miva" / "models"
    model = resolve("tiny-random", cache=repo_cache)  # built once, cached
    assert tracking_uri(local_cfg) == f"sqlite:///{tmp_path.resolve() / '.miva' / 'mlflow.db'}"
    monkeypatch.setenv("KFP_TASK_NAME", "evaluate-task")
    with pipeline_run(local_cfg) as parent:
        with stage_run(local_cfg, "evaluate") as run:
            mlflow.log_metrics({"eval/test/overall/accuracy": 0.5})
            assert run.data.tags["mlflow.parentRunId"] == parent
            assert run.data.tags["miva.kfp_task_name"] == "evaluate-task"
        result = reg.register_model(
            local_cfg, model, {"eval/test/overall/accuracy": 0.5}, eval_digest="e1"
        )
    assert (tmp_path / ".miva" / "mlflow.db").is_file()
    exp = mlflow.get_experiment(experiment_id(local_cfg))
    assert exp.artifact_location == (tmp_path / ".miva" / "mlartifacts").resolve().as_uri()
    assert any((tmp_path / ".miva" / "mlartifacts").rglob("model.safetensors"))
    assert result.champion == "1"
    runs = MlflowClient().search_runs([exp.experiment_id])
    assert {r.data.tags.get("mlflow.runName") for r in runs} >= {
        "miva-tiny",
        "evaluate",
        "register",
    }
    assert Path(".miva").is_dir()


def test_stage_run_alone_creates_and_ends_its_parent(local_cfg):
    with stage_run(local_cfg, "validate") as run:
        parent = run.data.tags["mlflow.parentRunId"]
    client = MlflowClient()
    assert client.get_run(parent).info.status == "FINISHED"
    assert client.get_run(run.info.run_id).info.status == "FINISHED"


def test_kfp_run_id_joins_one_parent(local_cfg, monkeypatch):
    monkeypatch.setenv("KFP_RUN_ID", "kfp-abc")
    with stage_run(local_cfg, "synthesize") as first:
        pass
    # A later stage process: same KFP run id, no MIVA_PARENT_RUN_ID -> the same parent.
    with stage_run(local_cfg, "validate") as second:
        pass
    assert first.data.tags["mlflow.parentRunId"] == second.data.tags["mlflow.parentRunId"]
    assert first.data.tags["miva.kfp_run_id"] == "kfp-abc"


def test_rollout_stages_record_how_the_python_tool_is_isolated(tmp_path, monkeypatch):
    from miva.agent.sandbox import sandbox_mode

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MIVA_PARENT_RUN_ID", raising=False)
    monkeypatch.delenv("KFP_RUN_ID", raising=False)
    cfg = load_config("tiny-cpu", ["agent.tools=[zoom,python]", "agent.python.prestart=0"])
    with stage_run(cfg, "evaluate") as run:
        tags = run.data.tags
    mode = sandbox_mode(cfg.agent.python)
    assert tags["miva.python_sandbox"] == mode
    assert mode.startswith(("kernel+", "unavailable: "))
    with stage_run(load_config("tiny-cpu"), "evaluate") as run:  # no python tool: no tag
        assert "miva.python_sandbox" not in run.data.tags
