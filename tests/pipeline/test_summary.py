"""The local-run summary, read back from a run folder laid out the way kfp.local writes it."""

from __future__ import annotations

import json

import pytest

from miva.pipeline.summary import eval_table, summarize


def test_eval_table_deltas_over_the_starting_model():
    metrics = {
        "eval/test/overall/accuracy": 0.50,
        "baseline/test/overall/accuracy": 0.375,  # no delta given: computed
        "eval/test/counting/accuracy": 0.25,
        "baseline/test/counting/accuracy": 0.5,
        "delta/test/counting/accuracy": -0.25,  # given by eval: taken as is
        "eval/test/grounding/acc_iou50": 0.1,  # no baseline at all
        "eval/test/overall/mean_turns": 1.5,  # not a headline metric
        "eval/test/digest": "abc",  # not a number
        "train/reward_mean": 1.0,  # not an eval metric
    }
    # 0.50 - 0.375 = 0.125
    assert eval_table(metrics) == [
        ("eval/test/counting/accuracy", 0.25, 0.5, -0.25),
        ("eval/test/grounding/acc_iou50", 0.1, None, None),
        ("eval/test/overall/accuracy", 0.5, 0.375, pytest.approx(0.125)),
    ]
    # without headline metrics every eval/ number is shown
    assert [r[0] for r in eval_table({"eval/t/x/mean_turns": 2.0})] == ["eval/t/x/mean_turns"]


def test_summarize_reads_each_stage(tmp_path):
    run = tmp_path / "miva-2026-01-01-00-00-00-000000"
    (run / "synthesize" / "dataset").mkdir(parents=True)
    (run / "synthesize" / "dataset" / "dataset.json").write_text(
        json.dumps(
            {
                "total": 6,
                "digest": "d" * 32,
                "counts": {"train": {"counting": 4}, "test": {"counting": 2}},
            }
        )
    )
    (run / "validate" / "validated").mkdir(parents=True)
    (run / "validate" / "validated" / "report.json").write_text(
        json.dumps({"verdict": "pass", "rows": {"clean": 6, "quarantined": 0}})
    )
    (run / "grpo-2" / "model").mkdir(parents=True)
    (run / "grpo-2" / "model" / "curve.png").write_bytes(b"png")
    (run / "evaluate-2" / "results").mkdir(parents=True)
    (run / "evaluate-2" / "results" / "metrics.json").write_text(
        json.dumps(
            {
                "eval/test/overall/accuracy": 0.5,
                "baseline/test/overall/accuracy": 0.25,
                "eval/test/overall/items": 40.0,
                "eval/test/overall/majority_share": 0.3,
                "eval/test/overall/accuracy_ci95_low": 0.352,
                "eval/test/overall/accuracy_ci95_high": 0.648,
                "delta/test/overall/p_value": 0.02,
            }
        )
    )
    (run / "register-2").mkdir()
    (run / "register-2" / "decision").write_text(
        "# v1\nregistered miva-agent v1: promoted; champion is v1\n"
    )
    s = summarize(run, mlflow_db=tmp_path / "mlflow.db")
    text = s.render()
    assert "dataset     6 samples (test 2, train 4)" in text
    assert "validation  PASS: 6 clean, 0 quarantined" in text
    assert "sft         skipped" in text
    assert f"curve: {run / 'grpo-2' / 'model' / 'curve.png'}" in text
    assert (
        "| eval/test/overall/accuracy | 0.5000 | 0.352-0.648 | 0.2500 | 0.2500 | 0.02 | 0.300 | 40 |"
        in text
    )
    assert (
        "test/overall: accuracy 0.500 (95 % CI 0.352-0.648, 40 items) is above the majority "
        "share 0.300 (the interval excludes it); it beats the starting model" in text
    )
    assert "registry    registered miva-agent v1: promoted; champion is v1" in text
    assert f"mlflow ui --backend-store-uri sqlite:///{tmp_path / 'mlflow.db'}" in text
