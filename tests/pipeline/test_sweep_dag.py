"""The sweep DAG without running it: the compiled YAML, the plan's checks, the select step
against a real MLflow store, and the CLI's arguments (the kfp.local run is in
test_sweep_local.py, marked slow)."""

from __future__ import annotations

import json

import pytest
import yaml

from miva.cli import main
from miva.config import load_config
from miva.errors import ConfigError
from miva.pipeline import submit
from miva.pipeline.artifacts import encode_overrides, parse_overrides
from miva.pipeline.sweep import SweepSpec, TrialResult, result_json
from miva.pipeline.sweep_run import plan_sweep, select

SPEC = {"parameters": {"grpo.lr": [1.0e-5, 3.0e-5]}, "parallelism": 3, "name": "lr"}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    overrides = ["pipeline.gpu_count=2"]
    cfg = load_config("tiny-cpu", overrides)
    path = submit.compile_pipeline(
        cfg,
        "tiny-cpu",
        overrides,
        tmp_path_factory.mktemp("c") / "sweep.yaml",
        sweep=SweepSpec.model_validate(SPEC),
    )
    spec, platform = yaml.safe_load_all(path.read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _tasks(spec):
    for comp_name, comp in spec["components"].items():
        for name, task in comp.get("dag", {}).get("tasks", {}).items():
            yield comp_name, name, task


def test_trials_fan_out_with_the_configured_parallelism(compiled):
    spec, _ = compiled
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert json.loads(params["sweep"]["defaultValue"])["parameters"] == SPEC["parameters"]
    loops = [t for _, _, t in _tasks(spec) if "parameterIterator" in t]
    assert len(loops) == 2  # one per SFT branch
    assert all(t["iteratorPolicy"] == {"parallelismLimit": 3} for t in loops)
    # inside each loop: only the trial; select, the winner import, evaluate and register after it
    in_loops = {c: [n for cc, n, _ in _tasks(spec) if cc == c] for c, _, _ in _tasks(spec)}
    loop_bodies = [names for c, names in in_loops.items() if c.startswith("comp-for-loop")]
    assert sorted(loop_bodies) == [["sweep-trial"], ["sweep-trial-2"]]
    names = {n for _, n, _ in _tasks(spec)}
    assert {"sweep-select", "importer", "evaluate", "register", "sft"} <= names


def test_trials_are_gpu_tasks_placed_like_the_main_dag(compiled):
    spec, k8s = compiled
    trial = spec["deploymentSpec"]["executors"]["exec-sweep-trial"]["container"]
    assert trial["resources"]["accelerator"]["resourceCount"] == "2"
    assert k8s["exec-sweep-trial"]["nodeSelector"]["labels"] == {"miva.ai/pool": "gpu"}
    assert k8s["exec-sweep-trial"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert "accelerator" not in spec["deploymentSpec"]["executors"]["exec-sweep-select"][
        "container"
    ].get("resources", {})


def test_plan_rejects_keys_of_the_stages_that_run_once():
    sweep = SweepSpec.model_validate({"parameters": {"sft.lr": [1e-3, 2e-3]}}).model_dump_json()
    with pytest.raises(ConfigError, match="run once"):
        plan_sweep("tiny-cpu", encode_overrides([]), sweep)


def test_select_picks_logs_and_returns_the_winners_test_overrides(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MIVA_PARENT_RUN_ID", raising=False)
    monkeypatch.delenv("KFP_RUN_ID", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    sweep = SweepSpec.model_validate(SPEC).model_dump_json()
    results = [
        result_json(
            TrialResult(0, {"grpo.lr": 1e-5}, {"eval/val/overall/accuracy": 0.25}, 3.0, "m0")
        ),
        result_json(
            TrialResult(1, {"grpo.lr": 3e-5}, {"eval/val/overall/accuracy": 0.5}, 4.0, "m1")
        ),
    ]
    chosen = select("tiny-cpu", encode_overrides(["grpo.steps=1"]), sweep, results)
    assert chosen.winner.index == 1 and chosen.winner.model_uri == "m1"
    assert parse_overrides(chosen.winner_overrides) == [
        "grpo.steps=1",
        "grpo.lr=3.0e-05",
        "evaluate.splits=[test]",
    ]
    assert load_config("tiny-cpu", parse_overrides(chosen.winner_overrides)).evaluate.splits == [
        "test"
    ]
    client = MlflowClient(uri)
    (parent,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert parent.data.tags["miva.sweep.winner"] == "trial-1"
    assert parent.data.metrics["sweep/best"] == 0.5
    assert parent.data.tags["miva.sweep.metric"] == "eval/val/overall/accuracy"
    paths = {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")}
    assert paths == {"sweep/sweep_summary.md", "sweep/trials.json"}


def test_cli_sweep_needs_a_sweep_file(capsys):
    assert main(["pipeline", "sweep", "-c", "tiny-cpu"]) != 0
    assert "needs --sweep" in capsys.readouterr().err


def test_cli_compiles_the_sweep_dag(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(SPEC))
    out = tmp_path / "sweep-pipeline.yaml"
    assert main(["pipeline", "compile", "--sweep", str(sweep), "--output", str(out)]) == 0
    assert yaml.safe_load_all(out.read_text()).__next__()["pipelineInfo"]["name"] == "miva-sweep"
