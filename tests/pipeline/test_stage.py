"""What component bodies call: overrides round trip, config resolution, the stage runner."""

from __future__ import annotations

import json

import pytest

from miva.errors import ConfigError
from miva.pipeline import stage
from miva.pipeline.stage import StageError


def test_overrides_round_trip_and_bad_input_names_the_problem():
    items = ["train.lr=1e-5", "data.tasks=[counting, selection]"]
    assert stage.parse_overrides(stage.encode_overrides(items)) == items
    assert stage.parse_overrides("") == []
    with pytest.raises(ConfigError, match="JSON list"):
        stage.parse_overrides("train.lr=1e-5")
    with pytest.raises(ConfigError, match="JSON list"):
        stage.parse_overrides('{"train.lr": 1}')


def test_plan_decides_sft_and_images_from_the_resolved_config():
    p = stage.plan(
        "tiny-cpu", '["sft.enabled=false", "pipeline.num_nodes=2"]', "reg.example/x", "t1"
    )
    assert (p.sft_enabled, p.num_nodes) == (False, 2)
    assert (
        p.base_image == "reg.example/x/miva-base:t1" and p.gpu_image == "reg.example/x/miva-gpu:t1"
    )
    default = stage.plan("tiny-cpu", "[]")  # empty registry/tag: the config's
    assert default.base_image == "ghcr.io/miva-project/miva-base:latest" and default.sft_enabled


def test_plan_fails_on_a_bad_key_naming_it():
    with pytest.raises(ConfigError, match="train.nope"):
        stage.plan("tiny-cpu", '["train.nope=1"]')


def test_run_stage_runs_the_cli_handler_in_process(capsys):
    stage.run_stage("config", "tiny-cpu", '["train.lr=0.5"]', ["--json"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["train"]["lr"] == 0.5


def test_run_stage_failure_carries_the_stage_message_and_records_it(tmp_path, monkeypatch):
    monkeypatch.setenv(stage.ERRORS_ENV, str(tmp_path))
    monkeypatch.setenv("KFP_TASK_NAME", "validate")  # set on every task by the DAG
    with pytest.raises(StageError, match=r"(?s)validate: miva config: .*train.nope"):
        stage.run_stage("config", "tiny-cpu", '["train.nope=1"]', [])
    assert "train.nope" in (tmp_path / "validate.error").read_text()


def test_validation_outputs_from_report(tmp_path):
    report = {
        "verdict": "pass",
        "rows": {"read": 10, "clean": 9, "quarantined": 1, "quarantine_fraction": 0.1},
        "quarantine_by_rule": {"question_length": 1},
        "rules": [{"name": "x", "passed": True}],
    }
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert stage.validation_metadata(tmp_path) == {
        "verdict": "pass", "rows_read": 10.0, "rows_clean": 9.0, "rows_quarantined": 1.0,
        "rows_quarantine_fraction": 0.1,
    }  # fmt: skip
    metrics = stage.validation_metrics(tmp_path)
    assert (
        metrics["validate/rows/clean"] == 9.0
        and metrics["validate/quarantine/question_length"] == 1.0
    )


def test_html_report_inlines_plots_when_the_stage_wrote_no_page(tmp_path):
    (tmp_path / "train_metrics.json").write_text('{"train": {"reward_mean": 0.25}, "name": "x"}')
    (tmp_path / "curve.png").write_bytes(b"\x89PNG fake bytes")
    dest = tmp_path / "out" / "report.html"
    stage.html_report(tmp_path, dest, title="GRPO")
    page = dest.read_text()
    assert "data:image/png;base64," in page and "train/reward_mean" in page and "0.25" in page
    (tmp_path / "report.html").write_text("<p>own page</p>")
    stage.html_report(tmp_path, dest, title="GRPO")
    assert dest.read_text() == "<p>own page</p>"


def test_baseline_is_the_starting_model_unless_configured():
    assert stage.baseline_args("tiny-cpu", "[]") == ["--baseline", "tiny-random"]
    assert stage.baseline_args("tiny-cpu", '["eval.baseline=/m/prev"]') == ["--baseline", "/m/prev"]


def test_training_metrics_take_the_last_step(tmp_path):
    rows = ['{"step": 1, "sft/loss": 2.0}', '{"step": 2, "sft/loss": 1.5, "sft/lr": 0.001}', ""]
    (tmp_path / "sft_metrics.jsonl").write_text("\n".join(rows))
    (tmp_path / "config.json").write_text('{"hidden_size": 64}')  # not a metrics file
    assert stage.training_metrics(tmp_path) == {"step": 2.0, "sft/loss": 1.5, "sft/lr": 0.001}


def test_a_crash_keeps_its_traceback_and_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv(stage.ERRORS_ENV, str(tmp_path))
    # `config show` cannot write to a closed stdout: a bug-like crash, not a MivaError
    import io
    import sys

    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stdout", closed)
    monkeypatch.setenv("KFP_TASK_NAME", "evaluate")
    with pytest.raises(ValueError, match="closed file"):
        stage.run_stage("config", "tiny-cpu", "[]", [])
    assert "crashed: ValueError" in (tmp_path / "evaluate.error").read_text()
