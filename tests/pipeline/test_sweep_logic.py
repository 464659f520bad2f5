"""Sweep files: grid and seeded-random expansion, override round trips, winner selection and
the summary table (no pipeline run; the kfp.local sweep is in test_sweep_local.py)."""

import pytest
import yaml

from miva.config import load_config, parse_override
from miva.errors import ConfigError
from miva.pipeline.sweep import (
    SweepSpec,
    TrialResult,
    check_trials,
    expand,
    format_table,
    load_spec,
    override_text,
    pick_winner,
    summary_rows,
)


def _spec(**kw):
    base = {"parameters": {"grpo.lr": [1.0e-5, 3.0e-5], "grpo.group_size": [4, 8, 16]}}
    return SweepSpec.model_validate({**base, **kw})


def test_grid_is_every_combination_last_key_fastest():
    trials = expand(_spec(fixed=["grpo.steps=2"]))
    assert [t.settings for t in trials] == [
        {"grpo.lr": 1e-5, "grpo.group_size": 4},
        {"grpo.lr": 1e-5, "grpo.group_size": 8},
        {"grpo.lr": 1e-5, "grpo.group_size": 16},
        {"grpo.lr": 3e-5, "grpo.group_size": 4},
        {"grpo.lr": 3e-5, "grpo.group_size": 8},
        {"grpo.lr": 3e-5, "grpo.group_size": 16},
    ]
    assert trials[4].overrides == ["grpo.steps=2", "grpo.lr=3.0e-05", "grpo.group_size=8"]
    assert [t.name for t in trials[:2]] == ["trial-0", "trial-1"]


def test_random_draws_are_distinct_seeded_and_bounded():
    a = expand(_spec(strategy="random", trials=4, seed=7))
    b = expand(_spec(strategy="random", trials=4, seed=7))
    c = expand(_spec(strategy="random", trials=4, seed=8))
    settings = [tuple(t.settings.values()) for t in a]
    assert settings == [tuple(t.settings.values()) for t in b]  # same seed, same trials
    assert len(set(settings)) == 4  # drawn without replacement
    assert settings != [tuple(t.settings.values()) for t in c]
    grid = {tuple(t.settings.values()) for t in expand(_spec())}
    assert set(settings) <= grid
    with pytest.raises(ConfigError, match="only 6 distinct"):
        expand(_spec(strategy="random", trials=7))


def test_random_on_a_huge_grid_does_not_build_it():
    spec = SweepSpec.model_validate(
        {
            "strategy": "random",
            "trials": 3,
            "parameters": {f"k{i}": list(range(10)) for i in range(12)},  # 10^12 combinations
        }
    )
    assert len(expand(spec)) == 3


@pytest.mark.parametrize("value", [1e-5, 3.0e-4, 0.2, 8, True, "token-mean", [0.2, 0.28]])
def test_override_text_round_trips_through_set(value):
    path, parsed = parse_override(override_text("grpo.x", value))
    assert path == ["grpo", "x"] and parsed == value and type(parsed) is type(value)


def test_spec_errors_name_the_field(tmp_path):
    bad = tmp_path / "sweep.yaml"
    bad.write_text(yaml.safe_dump({"strategy": "random", "parameters": {"grpo.lr": []}}))
    with pytest.raises(ConfigError, match="parameters") as err:
        load_spec(bad)
    assert "sweep.yaml" in str(err.value)
    bad.write_text(yaml.safe_dump({"strategy": "random", "parameters": {"grpo.lr": [1]}}))
    with pytest.raises(ConfigError, match="needs `trials`"):
        load_spec(bad)
    bad.write_text(yaml.safe_dump({"parameters": {"grpo.lr": [1]}, "typo": 1}))
    with pytest.raises(ConfigError, match="typo"):
        load_spec(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_spec(tmp_path / "missing.yaml")


def test_check_trials_names_the_bad_trial():
    spec = SweepSpec.model_validate({"parameters": {"grpo.lr": [1.0e-5, -1.0]}})
    with pytest.raises(ConfigError, match=r"trial-1 .*grpo.lr"):
        check_trials("tiny-cpu", [], expand(spec))
    good = expand(_spec())
    check_trials("tiny-cpu", [], good)
    cfg = load_config("tiny-cpu", good[5].overrides)
    assert cfg.grpo.lr == 3e-5 and cfg.grpo.group_size == 16


def test_winner_by_goal_ties_and_missing_metrics():
    spec = _spec(metric="eval/val/overall/accuracy")
    results = [
        TrialResult(0, {"grpo.lr": 1e-5}, {"eval/val/overall/accuracy": 0.4}, 10.0),
        TrialResult(1, {"grpo.lr": 3e-5}, {"eval/val/overall/accuracy": 0.6}, 12.5),
        TrialResult(2, {"grpo.lr": 5e-5}, {"eval/val/overall/accuracy": 0.6}, 11.0),  # tie: 1 wins
        TrialResult(3, {"grpo.lr": 7e-5}, {"other": 1.0}, 3.0),  # failed to report the metric
        TrialResult(4, {"grpo.lr": 9e-5}, {"eval/val/overall/accuracy": float("nan")}, 3.0),
    ]
    assert pick_winner(spec, results).index == 1
    low = _spec(metric="eval/val/overall/accuracy", goal="minimize")
    assert pick_winner(low, results).index == 0
    with pytest.raises(ConfigError, match="no trial has a value"):
        pick_winner(_spec(metric="eval/val/overall/f1"), results)


def test_summary_table_lists_settings_metric_time_and_winner():
    spec = _spec(metric="eval/val/overall/accuracy")
    results = [
        TrialResult(1, {"grpo.lr": 3e-5, "grpo.group_size": 8}, {spec.metric: 0.625}, 12.54),
        TrialResult(0, {"grpo.lr": 1e-5, "grpo.group_size": 4}, {spec.metric: 0.5}, 10.0),
    ]
    rows = summary_rows(spec, results, winner=1)
    assert [r["trial"] for r in rows] == [0, 1]
    assert rows[1] == {
        "trial": 1,
        "grpo.lr": 3e-5,
        "grpo.group_size": 8,
        "eval/val/overall/accuracy": 0.625,
        "seconds": 12.5,
        "winner": True,
    }
    table = format_table(rows).splitlines()
    assert table[0].startswith("| trial | grpo.lr") and "seconds" in table[0]
    assert "3e-05" in table[3] and "0.625" in table[3] and "**winner**" in table[3]
    assert "**winner**" not in table[2]


def test_shipped_sweep_files_resolve_for_the_tiny_preset():
    from pathlib import Path

    files = sorted((Path(__file__).resolve().parents[2] / "configs" / "sweeps").glob("*.yaml"))
    assert files
    for path in files:
        spec = load_spec(path)
        trials = expand(spec)
        assert len(trials) == (spec.trials or spec.grid_size)
        check_trials("tiny-cpu", [], trials)
