"""What component bodies call around their stage: overrides, the plan, the task context,
artifact metadata and pages."""

from __future__ import annotations

import json

import pytest

from miva.errors import ConfigError
from miva.pipeline import artifacts
from miva.pipeline.artifacts import STAGE_LINE, StageError
from miva.stages.tracking import last_logged


def test_overrides_round_trip_and_bad_input_names_the_problem():
    items = ["grpo.lr=1e-5", "synthesize.tasks=[counting, selection]"]
    assert artifacts.parse_overrides(artifacts.encode_overrides(items)) == items
    assert artifacts.parse_overrides("") == []
    with pytest.raises(ConfigError, match="JSON list"):
        artifacts.parse_overrides("grpo.lr=1e-5")
    with pytest.raises(ConfigError, match="JSON list"):
        artifacts.parse_overrides('{"grpo.lr": 1}')


def test_plan_decides_sft_and_images_from_the_resolved_config():
    p = artifacts.plan(
        "tiny-cpu", '["sft.enabled=false", "pipeline.num_nodes=2"]', "reg.example/x", "t1"
    )
    assert (p.sft_enabled, p.num_nodes) == (False, 2)
    assert (
        p.base_image == "reg.example/x/miva-base:t1" and p.gpu_image == "reg.example/x/miva-gpu:t1"
    )
    default = artifacts.plan("tiny-cpu", "[]")  # empty registry/tag: the config's
    assert default.base_image == "ghcr.io/miva-project/miva-base:latest" and default.sft_enabled


def test_plan_pins_images_by_digest_when_the_config_has_them():
    base, gpu = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    sets = f'["pipeline.image_digests.base={base}", "pipeline.image_digests.gpu={gpu}"]'
    p = artifacts.plan("tiny-cpu", sets, "reg.example/x", "t1")
    assert p.base_image == f"reg.example/x/miva-base:t1@{base}"
    assert p.gpu_image == f"reg.example/x/miva-gpu:t1@{gpu}"  # what the TrainJob runs too
    with pytest.raises(ConfigError, match="image_digests.gpu must be sha256"):
        artifacts.plan("tiny-cpu", '["pipeline.image_digests.gpu=sha256:abc"]')
    with pytest.raises(ConfigError, match="image_digests"):
        artifacts.plan("tiny-cpu", f'["pipeline.image_digests.cpu={base}"]')


def test_plan_fails_on_a_bad_key_naming_it():
    with pytest.raises(ConfigError, match="grpo.nope"):
        artifacts.plan("tiny-cpu", '["grpo.nope=1"]')


def test_stage_task_yields_the_config_and_prints_the_key_figure(capsys):
    with artifacts.stage_task("grpo", "tiny-cpu", '["grpo.lr=0.5"]') as task:
        assert task.cfg.grpo.lr == 0.5
        task.done("reward 0.25")
    assert capsys.readouterr().out == f"{STAGE_LINE}reward 0.25\n"


def test_stage_failure_carries_the_stage_message_and_records_it(tmp_path, monkeypatch):
    monkeypatch.setenv(artifacts.ERRORS_ENV, str(tmp_path))
    monkeypatch.setenv("KFP_TASK_NAME", "validate")  # set on every task by the DAG
    failing = artifacts.stage_task("validate", "tiny-cpu", '["grpo.nope=1"]')
    with pytest.raises(StageError, match=r"(?s)validate: miva validate: .*grpo.nope"), failing:
        pass
    assert "grpo.nope" in (tmp_path / "validate.error").read_text()


def test_a_crash_keeps_its_traceback_and_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv(artifacts.ERRORS_ENV, str(tmp_path))
    monkeypatch.setenv("KFP_TASK_NAME", "evaluate")
    with pytest.raises(ZeroDivisionError), artifacts.stage_task("evaluate", "tiny-cpu", "[]"):
        _ = 1 / 0
    assert "crashed: ZeroDivisionError" in (tmp_path / "evaluate.error").read_text()


def test_validation_metadata_from_report(tmp_path):
    report = {
        "verdict": "pass",
        "rows": {"read": 10, "clean": 9, "quarantined": 1, "quarantine_fraction": 0.1},
        "quarantine_by_rule": {"question_length": 1},
        "rules": [{"name": "x", "passed": True}],
    }
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert artifacts.validation_metadata(tmp_path) == {
        "verdict": "pass", "rows_read": 10.0, "rows_clean": 9.0, "rows_quarantined": 1.0,
        "rows_quarantine_fraction": 0.1,
    }  # fmt: skip


def test_html_report_inlines_plots_when_the_stage_wrote_no_page(tmp_path):
    (tmp_path / "curve.png").write_bytes(b"\x89PNG bytes")
    dest = tmp_path / "out" / "report.html"
    artifacts.html_report(tmp_path, dest, "GRPO", {"train/reward_mean": 0.25})
    page = dest.read_text()
    assert "data:image/png;base64," in page and "train/reward_mean" in page and "0.25" in page
    (tmp_path / "report.html").write_text("<p>own page</p>")
    artifacts.html_report(tmp_path, dest, "GRPO")
    assert dest.read_text() == "<p>own page</p>"


def test_last_logged_takes_the_last_step_without_its_number(tmp_path):
    rows = ['{"step": 1, "sft/loss": 2.0}', '{"step": 2, "sft/loss": 1.5, "sft/lr": 0.001}', ""]
    (tmp_path / "sft_metrics.jsonl").write_text("\n".join(rows))
    assert last_logged(tmp_path / "sft_metrics.jsonl") == {"sft/loss": 1.5, "sft/lr": 0.001}
    assert last_logged(tmp_path / "missing.jsonl") == {}
