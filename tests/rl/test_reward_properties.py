"""Property-based tests (hypothesis) of every reward: arbitrary assistant text (unicode, huge
numbers, malformed boxes, nested or broken tags), arbitrary zoom regions and malformed gold
boxes never raise, and every component comes back a float in its documented range."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from miva.agent.coords import Frame
from miva.agent.trajectory import ToolCall, Trajectory, Turn
from miva.config import JudgeConfig
from miva.data.schema import Evidence, Sample
from miva.rl.grpo import _convert_answer
from miva.rl.judge import Judge
from miva.rl.rewards.registry import REWARDS, RewardSettings, score
from tests.adversarial import untrusted

numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**30), 10**30)
boxes = st.lists(numbers, min_size=0, max_size=6)
# The real judge client against a port nothing listens on: every judgement fails at once,
# so the judge component is the rule score it falls back to.
UNREACHABLE_JUDGE = Judge(JudgeConfig(url="http://127.0.0.1:9/v1", retries=0, cache_dir=None))


def _gold(kind: str, box: list, image: int):
    return {
        "choice": "B",
        "number": box[0] if box else 3,
        "text": ["red car", "北京"],
        "image_index": image,
        "bbox": box,
        "image_bbox": {"image": image, "bbox": box},
    }[kind]


def _trajectory(texts: list[str], region_box: list, region_image: int, status: str) -> Trajectory:
    turns = [Turn("assistant", t) for t in texts]
    call = ToolCall(0, "zoom", {}, True, "ok", 1, {"image": region_image, "bbox": region_box})
    n = 3
    return Trajectory(
        sample_id="s",
        token_ids=[0] * n,
        loss_mask=[0, 1, 1],
        sampled_logprobs=[0.0] * n,
        prompt_length=1,
        turns=turns,
        tool_calls=[call],
        frames=[Frame(64, 48, 56, 56), Frame(30, 90, 28, 84)],
        status=status,  # type: ignore[arg-type]
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(untrusted, min_size=0, max_size=3),
    kind=st.sampled_from(["choice", "number", "text", "image_index", "bbox", "image_bbox"]),
    gold_box=boxes,
    gold_image=st.integers(-3, 5),
    region_box=boxes,
    region_image=st.integers(-3, 5),
    status=st.sampled_from(["ok", "malformed", "truncated", "tool_error"]),
    iou_threshold=st.none() | st.floats(0, 1),
    convert=st.booleans(),
)
@example(  # found by the answer-parser property: an infinite image number
    texts=["<answer>" + "9" * 400 + " 1 2 3 4</answer>"],
    kind="image_bbox",
    gold_box=[0, 0, 10, 10],
    gold_image=1,
    region_box=[0, 0, 5, 5],
    region_image=1,
    status="ok",
    iou_threshold=None,
    convert=True,
)
def test_every_reward_is_a_float_for_any_text(
    texts, kind, gold_box, gold_image, region_box, region_image, status, iou_threshold, convert
):
    sample = Sample(
        task="t",
        images=[b"", b""],
        question="q",
        answer_type=kind,
        answer=_gold(kind, gold_box, gold_image),
        choices=["red", "blue", "green"] if kind == "choice" else None,
        evidence=[Evidence(gold_image, tuple(gold_box[:4]))] if len(gold_box) >= 4 else [],  # type: ignore[arg-type]
    )
    traj = _trajectory(texts, region_box, region_image, status)
    cfg = RewardSettings(
        weights={name: 1.0 for name in REWARDS},
        iou_threshold=iou_threshold,
        tool_gain_requires_evidence=True,
        length_penalty_tokens=1,
        turn_penalty=0.1,
        convert_answer=_convert_answer if convert else None,
        judge=UNREACHABLE_JUDGE,
    )
    (row,) = score([traj], [sample], cfg)
    assert set(row) == {*REWARDS, "total"}
    for name, value in row.items():
        assert isinstance(value, float), name
        if name in (
            "accuracy",
            "format",
            "tool_gain",
            "grounding_image",
            "grounding_object",
            "judge",
        ):
            assert 0.0 <= value <= 1.0, (name, value)
        elif name in ("length", "turns"):
            assert value <= 0.0 and math.isfinite(value)
