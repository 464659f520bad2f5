"""A 2-trial sweep of the tiny preset through kfp.local, end to end: shared data and SFT,
two trials in a ParallelFor, the winner picked on the validation split, evaluated on the
test split and the only model registered; MLflow parent/trial/stage runs checked.

About 7 minutes on this shared 2-core machine (load average 8-9), so marked slow."""

from __future__ import annotations

import pytest

from miva.config import load_config
from miva.pipeline.local import run_sweep_local
from miva.pipeline.sweep import SweepSpec
from tests.pipeline.test_local import SMOKE

# The random tiny model never closes its answer: every trial writes max_new_tokens tokens
# per item, so minimising tokens_per_sample picks the trial with the smaller limit (trial 1,
# not the first trial that a tie would pick).
SPEC = {
    "name": "smoke",
    "metric": "eval/val/overall/tokens_per_sample",
    "goal": "minimize",
    "parallelism": 2,
    "parameters": {"agent.max_new_tokens": [12, 6]},
}


@pytest.mark.slow
def test_two_trial_sweep_registers_the_winner(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = load_config("tiny-cpu", SMOKE)
    spec = SweepSpec.model_validate(SPEC)
    summary = run_sweep_local(cfg, "tiny-cpu", SMOKE, spec, pipeline_root=tmp_path / "runs")

    table = summary.sweep_table.splitlines()
    assert len(table) == 4 and "agent.max_new_tokens" in table[0]
    assert "**winner**" in table[3] and "**winner**" not in table[2]
    assert "sweep trials" in summary.render()
    # the test-split evaluation ran with the winner's settings
    assert summary.eval_metrics["eval/test/overall/tokens_per_sample"] <= 6
    assert summary.decision.startswith("registered miva-agent v1")

    client = MlflowClient(f"sqlite:///{tmp_path / '.miva' / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    by_kind: dict[str, list] = {}
    for r in runs:
        by_kind.setdefault(r.data.tags.get("miva.run_kind"), []).append(r)
    (parent,) = by_kind["pipeline"]
    assert parent.data.tags["miva.sweep"] == "smoke"
    assert parent.data.tags["miva.sweep.winner"] == "trial-1"
    trials = {r.data.tags["miva.trial"]: r for r in by_kind["trial"]}
    assert set(trials) == {"0", "1"}
    for index, trial in trials.items():
        assert trial.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert trial.data.params["agent.max_new_tokens"] == ["12", "6"][int(index)]
        assert trial.data.metrics["sweep/seconds"] > 0
        assert "eval/val/overall/tokens_per_sample" in trial.data.metrics
        stages = sorted(
            r.data.tags["miva.stage"]
            for r in by_kind["stage"]
            if r.data.tags["mlflow.parentRunId"] == trial.info.run_id
        )
        assert stages == ["evaluate", "grpo"]
    under_parent = sorted(
        r.data.tags["miva.stage"]
        for r in by_kind["stage"]
        if r.data.tags["mlflow.parentRunId"] == parent.info.run_id
    )
    assert under_parent == ["evaluate", "register", "sft", "synthesize", "validate"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")}
    assert "sweep/sweep_summary.md" in artifacts

    (version,) = client.search_model_versions()  # only the winner was registered
    assert "iteration-1" in version.tags["miva.source_model"]
