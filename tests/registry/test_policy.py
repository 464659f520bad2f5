"""The promotion policy as a pure function, with the numbers worked out by hand."""

from __future__ import annotations

import doctest
import math

from miva.registry import policy
from miva.registry.policy import decide

P = "eval/test/overall/accuracy"
G = "eval/test/overall/format"


def test_doctest():
    assert doctest.testmod(policy).failed == 0


def test_first_model_becomes_champion():
    d = decide({P: 0.1}, "e1", None, None, primary=P)
    assert d.promote and d.first and d.outcome == "promoted (first model)"
    assert "no champion yet" in d.reasons[0]


def test_accept_beats_by_margin_and_guard_within_tolerance():
    # 0.62 - 0.60 = 0.02 >= margin 0.02 (equal counts, EPS absorbs float noise);
    # guard drop 0.90 - 0.86 = 0.04 <= 0.05
    d = decide(
        {P: 0.62, G: 0.86}, "e1", {P: 0.60, G: 0.90}, "e1", primary=P, margin=0.02, guards={G: 0.05}
    )
    assert d.promote and not d.first, d.reasons
    assert d.reasons[0].startswith(P) and "+0.0200" in d.reasons[0]
    assert "within tolerance" in d.reasons[1]


def test_reject_below_margin():
    # 0.61 - 0.60 = 0.01 < margin 0.02
    d = decide({P: 0.61}, "e1", {P: 0.60}, "e1", primary=P, margin=0.02)
    assert not d.promote and "does not beat" in d.reasons[0]


def test_reject_tie_even_with_zero_margin():
    d = decide({P: 0.60}, "e1", {P: 0.60}, "e1", primary=P, margin=0.0)
    assert not d.promote


def test_reject_guard_drop_beyond_tolerance():
    # primary +0.10 passes, but guard drops 0.90 - 0.80 = 0.10 > 0.05
    d = decide({P: 0.70, G: 0.80}, "e1", {P: 0.60, G: 0.90}, "e1", primary=P, guards={G: 0.05})
    assert not d.promote
    assert any("guard" in r and "fell by 0.1000" in r for r in d.reasons)


def test_refuse_when_eval_sets_differ():
    d = decide({P: 0.9}, "new-set", {P: 0.1}, "old-set", primary=P, champion_version="3")
    assert not d.promote
    assert "eval set differs" in d.reasons[0] and "champion v3" in d.reasons[0]


def test_refuse_without_eval_digest():
    d = decide({P: 0.9}, None, {P: 0.1}, "e1", primary=P)
    assert not d.promote and "no eval-set digest" in d.reasons[0]


def test_refuse_when_metrics_missing():
    d = decide({"other": 1.0}, "e1", None, None, primary=P)
    assert not d.promote and P in d.reasons[0]
    d = decide({P: math.nan}, "e1", None, None, primary=P)
    assert not d.promote
    d = decide({P: 0.9, G: 0.9}, "e1", {P: 0.1}, "e1", primary=P, guards={G: 0.1})
    assert not d.promote and "champion lacks" in d.reasons[0]


def test_metric_key_keeps_mlflow_names_and_replaces_the_rest():
    from miva.metric_names import metric_key

    assert metric_key("eval/test/overall/pass@4") == "eval/test/overall/pass_4"
    assert metric_key("rollout/tool_calls/zoom', 95]}") == "rollout/tool_calls/zoom__ 95__"
    assert metric_key("train/reward_mean") == "train/reward_mean"
