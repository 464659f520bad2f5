"""The whole DAG on this machine through kfp.local (SubprocessRunner, no Docker).

`SMOKE` shrinks the tiny preset so the end-to-end run fits in `make test`; the full tiny
preset runs in `make test-slow`. Each test works in its own folder (artifacts, MLflow).
"""

from __future__ import annotations

import pytest

from miva.config import load_config
from miva.pipeline.local import LocalRunError, run_local

# A few dozen samples, a handful of SFT/GRPO steps, a small eval.
SMOKE = [
    "synthesize.n=40",
    "synthesize.workers=1",
    "sft.steps=2",
    "sft.batch_size=4",
    "grpo.steps=1",
    "grpo.prompts_per_step=2",
    "grpo.group_size=2",
    "grpo.micro_batch_size=4",
    "grpo.checkpoint_every=1",
    "agent.max_turns=2",
    "agent.max_new_tokens=12",
    "evaluate.max_items=6",
]


def _run(tmp_path, monkeypatch, overrides, preset="tiny-cpu", console=None):
    monkeypatch.chdir(tmp_path)  # .miva/ (MLflow SQLite, artifacts) lands here
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = load_config(preset, overrides)
    echo = console.append if console is not None else print
    return run_local(cfg, preset, overrides, pipeline_root=tmp_path / "runs", echo=echo)


def _check_summary(summary, tmp_path):
    text = summary.render()
    assert summary.dataset["total"] > 0
    assert summary.validation["verdict"] == "pass"
    assert summary.sft_ran
    assert summary.curve is not None and summary.curve.exists()
    rows = summary.eval_rows()
    assert rows and all(start is not None and delta is not None for _, _, start, delta in rows)
    assert summary.decision.startswith("registered ")
    assert "mlflow ui --backend-store-uri sqlite:///" in text
    assert (tmp_path / ".miva" / "mlflow.db").exists()
    for stage in ("configure", "synthesize", "validate", "sft", "grpo", "evaluate", "register"):
        assert any(p.name.split("-")[0] == stage for p in summary.run_dir.iterdir()), stage
    _check_mlflow_runs(tmp_path)


def _check_mlflow_runs(tmp_path):
    """One MLflow run per stage, each tagged with the KFP run id and its task name."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / '.miva' / 'mlflow.db'}")
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string="tags.`miva.run_kind` = 'stage'",
    )
    tags = {r.data.tags["miva.stage"]: r.data.tags for r in runs}
    assert set(tags) == {"synthesize", "validate", "sft", "grpo", "evaluate", "register"}
    kfp_ids = {t.get("miva.kfp_run_id") for t in tags.values()}
    assert len(kfp_ids) == 1 and None not in kfp_ids
    assert {t.get("miva.kfp_task_name") for t in tags.values()} >= {"synthesize", "validate", "sft"}


def test_local_run_end_to_end_smoke(tmp_path, monkeypatch, capsys):
    console: list[str] = []
    summary = _run(tmp_path, monkeypatch, SMOKE, console=console)
    _check_summary(summary, tmp_path)
    # the console: a header, then one line as each of the 7 tasks starts and one as it ends
    assert len(console) == 1 + 2 * 7, console
    assert all(" done " in line for line in console[2::2]), console
    assert capsys.readouterr().out == ""  # kfp.local's own output went to the logs
    assert summary.logs == summary.run_dir / "logs"
    tasks = {p.stem for p in summary.logs.glob("*.log")}
    assert {"executor", "configure", "synthesize", "validate", "sft", "grpo"} <= tasks
    assert "Got executor_input" in (summary.logs / "synthesize.log").read_text()


def test_stage_failure_stops_the_run_with_its_message(tmp_path, monkeypatch):
    # Every question is shorter than 1000 characters: all rows are quarantined and the gate fails.
    with pytest.raises(LocalRunError) as err:
        _run(
            tmp_path,
            monkeypatch,
            ["synthesize.n=16", "synthesize.workers=1", "validate.question_chars=[1000, 2000]"],
        )
    message = str(err.value)
    assert message.startswith("stage validate failed: miva validate:")
    (run_dir,) = (tmp_path / "runs").glob("miva-*")
    assert f"its log: {run_dir / 'logs' / 'validate.log'}" in message
    assert "failed the gate" in (run_dir / "logs" / "validate.log").read_text()
    assert (run_dir / "synthesize" / "dataset" / "dataset.json").exists()  # earlier artifacts stay
    assert not any(p.name.startswith(("sft", "grpo")) for p in run_dir.iterdir())


@pytest.mark.slow
def test_local_run_without_sft_takes_the_else_branch(tmp_path, monkeypatch):
    summary = _run(tmp_path, monkeypatch, [*SMOKE, "sft.enabled=false"])
    assert not summary.sft_ran and "sft         skipped" in summary.render()
    assert summary.decision.startswith("registered ") and summary.eval_rows()


@pytest.mark.slow
def test_local_run_full_tiny_preset(tmp_path, monkeypatch):
    summary = _run(tmp_path, monkeypatch, [])
    _check_summary(summary, tmp_path)
