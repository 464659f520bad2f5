"""Table-driven reward tests, adversarial outputs included."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from miva.agent.trajectory import ToolCall, Trajectory, Turn
from miva.config import RewardConfig
from miva.data.schema import Evidence
from miva.rl.rewards import reward_weights, score
from miva.scoring import (
    box_iou,
    exact_match,
    score_answer,
    scored_answer,
    token_f1,
)

CHOICES = ["red circle", "blue square", "green star"]

# (answer_type, prediction, answer, choices, kwargs, expected)
CASES = [
    ("choice", "B", "B", CHOICES, {}, 1.0),
    ("choice", "(b)", "B", CHOICES, {}, 1.0),
    ("choice", "B. blue square", "B", CHOICES, {}, 1.0),
    ("choice", "B. red circle", "B", CHOICES, {}, 0.0),  # letter and text disagree
    ("choice", "Blue Square", "B", CHOICES, {}, 1.0),
    ("choice", "blue square", "blue square", CHOICES, {}, 1.0),  # gold given as text
    ("choice", "A B C", "B", CHOICES, {}, 0.0),  # listing every option
    ("choice", "D", "B", CHOICES, {}, 0.0),  # not an option
    ("number", "4", 4, None, {}, 1.0),
    ("number", "4.0 objects", 4, None, {}, 1.0),
    ("number", "1,000", 1000, None, {}, 1.0),
    ("number", "5", 4, None, {}, 0.0),
    ("number", "4.1", 4, None, {"number_tolerance": 0.05}, 1.0),  # |0.1| <= 0.05 * 4 = 0.2
    ("number", "4.3", 4, None, {"number_tolerance": 0.05}, 0.0),  # 0.3 > 0.2
    ("number", "1e308" + "0" * 5, 4, None, {}, 0.0),  # enormous
    ("number", "9" * 5000, 4, None, {"number_tolerance": 1e9}, 0.0),  # inf never matches
    ("number", "nan", 4, None, {}, 0.0),
    ("text", "The Eiffel Tower", ["eiffel tower", "tour eiffel"], None, {}, 1.0),
    # pred tokens {big, red, car}; ref {red, car}: P = 2/3, R = 1, F1 = 0.8
    ("text", "big red car", "red car", None, {}, 0.8),
    ("text", "", "red car", None, {}, 0.0),
    ("image_index", "2", 2, None, {}, 1.0),
    ("image_index", "Image 2", 2, None, {}, 1.0),
    ("image_index", "3", 2, None, {}, 0.0),
    # [0,0,10,10] vs [5,0,15,10]: inter 50, union 150 -> 1/3
    ("bbox", "[0, 0, 10, 10]", [5, 0, 15, 10], None, {}, 1 / 3),
    ("bbox", "[0, 0, 10, 10]", [5, 0, 15, 10], None, {"iou_threshold": 0.5}, 0.0),
    ("bbox", "[0, 0, 10, 10]", [0, 0, 10, 12], None, {"iou_threshold": 0.5}, 1.0),
    ("bbox", "[10, 10, 0, 0]", [0, 0, 10, 10], None, {}, 0.0),  # inverted box
    ("bbox", "[0, 0, 1e400, 1e400]", [0, 0, 10, 10], None, {}, 0.0),  # infinite box
    ("bbox", "[0, 0, 10]", [0, 0, 10, 10], None, {}, 0.0),  # three numbers
    ("image_bbox", "image 2: [0, 0, 10, 10]", {"image": 2, "bbox": [0, 0, 10, 10]}, None, {}, 1.0),
    ("image_bbox", "image 1: [0, 0, 10, 10]", {"image": 2, "bbox": [0, 0, 10, 10]}, None, {}, 0.0),
    (
        "image_bbox",
        "image 2: [0, 0, 10, 10]",
        {"image": 2, "bbox": [5, 0, 15, 10]},
        None,
        {},
        1 / 3,
    ),
]


@pytest.mark.parametrize(("atype", "pred", "answer", "choices", "kwargs", "expected"), CASES)
def test_score_answer_table(atype, pred, answer, choices, kwargs, expected):
    assert score_answer(atype, pred, answer, choices, **kwargs) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("<answer>2</answer>", "2"),
        ("<think>I see</think>\n<answer> B </answer>", "B"),
        ("<answer>1</answer><answer>2</answer>", None),  # two answer tags
        ("<think><answer>2</answer></think>", None),  # hidden in the think block
        ("<think>unclosed <answer>2</answer>", None),  # think never closed: all of it is thinking
        ("2", None),
    ],
)
def test_extract_answer(response, expected):
    assert scored_answer(response) == expected


def test_text_metrics_max_over_references():
    assert exact_match("a dog", ["cat", "dog"]) == 1.0
    # vs "cat": P 1/2, R 1 -> F1 2/3; vs "mouse": 0; max 2/3
    assert token_f1("dog cat", ["cat", "mouse"]) == pytest.approx(2 / 3)
    assert box_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0


def _traj(text, status="ok", calls=(), n_tokens=4):
    turns = [Turn("user", "q")]
    for part in text if isinstance(text, list) else [text]:
        turns.append(Turn("assistant", part))
    return Trajectory(
        sample_id="s",
        token_ids=[0] * (2 + n_tokens),
        loss_mask=[0, 0] + [1] * n_tokens,
        sampled_logprobs=[0.0] * (2 + n_tokens),
        prompt_length=2,
        turns=turns,
        tool_calls=list(calls),
        status=status,
    )


def _sample(answer_type="number", answer=3, evidence=()):
    return NS(answer_type=answer_type, answer=answer, choices=None, evidence=list(evidence))


def _zoom(image, box, ok=True):
    return ToolCall(
        turn=1,
        name="zoom",
        arguments={},
        ok=ok,
        result_text="",
        region={"image": image, "bbox": box},
    )


def test_score_combines_weights_and_pays_tool_gain_only_when_correct():
    cfg = RewardConfig()  # 0.8 acc + 0.2 format + 1.2 tool gain
    s = _sample()
    trajs = [
        _traj("<think>x</think><answer>3</answer>"),  # 0.8 + 0.2 = 1.0
        _traj(
            ['<tool_call>{"name": "zoom", "arguments": {}}</tool_call>', "<answer>3</answer>"],
            calls=[_zoom(1, [0, 0, 5, 5])],
        ),  # 0.8 + 0.2 + 1.2 = 2.2
        _traj(
            ['<tool_call>{"name": "zoom", "arguments": {}}</tool_call>', "<answer>4</answer>"],
            calls=[_zoom(1, [0, 0, 5, 5])],
        ),  # 0.2 (tool, wrong)
        _traj("<answer>3</answer><answer>4</answer>"),  # hedging: 0
        _traj("<think><answer>3</answer></think>"),  # hidden: 0
    ]
    rows = score(trajs, [s] * 5, cfg)
    assert [r["total"] for r in rows] == pytest.approx([1.0, 2.2, 0.2, 0.0, 0.0])
    assert trajs[1].rewards["tool_gain"] == 1.0 and trajs[1].reward == pytest.approx(2.2)


def test_tool_gain_requires_evidence_overlap():
    cfg = RewardConfig(tool_gain_requires_evidence=True)
    s = _sample(evidence=[Evidence(image=2, bbox=(10, 10, 20, 20))])
    miss = _traj("<answer>3</answer>", calls=[_zoom(1, [10, 10, 20, 20])])  # wrong image
    hit = _traj("<answer>3</answer>", calls=[_zoom(2, [15, 15, 40, 40])])
    failed = _traj("<answer>3</answer>", calls=[_zoom(2, [15, 15, 40, 40], ok=False)])
    rows = score([miss, hit, failed], [s] * 3, cfg)
    assert [r["tool_gain"] for r in rows] == [0.0, 1.0, 0.0]


def test_grounding_dual_reward_and_penalties():
    cfg = RewardConfig(
        weights={"grounding_image": 0.5, "grounding_object": 0.5},
        length_penalty_tokens=4,
        turn_penalty=0.1,
    )
    s = _sample("image_bbox", {"image": 2, "bbox": [0, 0, 10, 10]})
    # right image, IoU 1/3, 6 tokens (penalty -(6-4)/4 = -0.5), one turn
    t = _traj("<answer>image 2: [5, 0, 15, 10]</answer>", n_tokens=6)
    # wrong image: object reward 0 although the box is perfect; two turns (-0.1)
    u = _traj(["<think>a</think>", "<answer>image 1: [0, 0, 10, 10]</answer>"])
    rows = score([t, u], [s, s], cfg)
    assert rows[0]["grounding_image"] == 1.0 and rows[0]["grounding_object"] == pytest.approx(1 / 3)
    assert rows[0]["total"] == pytest.approx(0.5 + 0.5 / 3 - 0.5)
    assert rows[1]["grounding_object"] == 0.0 and rows[1]["total"] == pytest.approx(-0.1)


def test_unknown_reward_name_lists_known():
    with pytest.raises(KeyError, match="known:.*accuracy"):
        reward_weights(RewardConfig(weights={"acuracy": 1.0}))
