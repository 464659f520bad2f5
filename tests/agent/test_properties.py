"""Property-based tests (hypothesis): what a model writes, what a benchmark ships and what a
tool returns is arbitrary text. The tool-call parser, the answer parser and the multimodal
assembly never raise on it, and image placeholders always equal image features."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from miva.agent import format as fmt
from miva.agent.assembly import SequenceBuilder, encode_image
from miva.agent.coords import Frame
from miva.data.schema import ANSWER_TYPES, Sample
from tests.adversarial import untrusted

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(untrusted)
def test_tool_call_parser_never_raises(text):
    call = fmt.parse_tool_call(text)
    assert call is None or isinstance(call, fmt.ParsedCall | fmt.CallError)
    if isinstance(call, fmt.ParsedCall):
        assert isinstance(call.name, str) and isinstance(call.arguments, dict)
    fmt.extract_answer(text)
    fmt.strip_think(text)
    fmt.has_tool_call(text)
    stop = fmt.first_stop(text)
    assert stop is None or 0 < stop <= len(text)


def _sample(answer_type: str, n_images: int) -> Sample:
    answers = {
        "choice": "B",
        "number": 3,
        "text": "red",
        "image_index": 1,
        "bbox": [0.0, 0.0, 10.0, 10.0],
        "image_bbox": {"image": 1, "bbox": [0.0, 0.0, 10.0, 10.0]},
    }
    return Sample(
        task="t",
        images=[b""] * n_images,
        question="q",
        answer_type=answer_type,
        answer=answers[answer_type],
        choices=["red", "blue", "green"] if answer_type == "choice" else None,
    )


@SETTINGS
@given(
    untrusted,
    st.sampled_from(ANSWER_TYPES),
    st.sampled_from(["qwen2.5-vl", "qwen2-vl"]),
    st.integers(1, 3),
)
# found by this test: integers beyond int()'s 4300-digit limit, and an infinite image number
@example("7" * 5000, "image_index", "qwen2.5-vl", 1)
@example("image " + "7" * 5000 + " [1, 2, 3, 4]", "image_bbox", "qwen2.5-vl", 1)
@example("9" * 400 + " 1 2 3 4", "image_bbox", "qwen2.5-vl", 1)
def test_answer_parser_never_raises_and_returns_the_answer_type(text, kind, family, n):
    frames = [Frame(64, 48, 56, 56) for _ in range(n)]
    value = fmt.parse_answer(text, _sample(kind, n), family, frames)
    if value is None:
        return
    if kind in ("choice", "text"):
        assert isinstance(value, str)
    elif kind == "number":
        assert isinstance(value, int | float)
    elif kind == "image_index":
        assert isinstance(value, int)
    else:
        box = value if kind == "bbox" else value["bbox"]
        assert len(box) == 4 and all(isinstance(v, float) for v in box)
        if kind == "image_bbox":
            assert 1 <= value["image"] <= n


@SETTINGS
@given(untrusted)
def test_escaping_leaves_no_markup_and_is_stable(text):
    escaped = fmt.escape_untrusted(text)
    assert fmt.escape_untrusted(escaped) == escaped
    for tag in (*fmt.STOP_STRINGS, fmt.IMAGE_PLACEHOLDER, "<|im_end|>", "<|image_pad|>"):
        assert tag not in escaped


@pytest.fixture(scope="module")
def encoded(processor):
    return [
        encode_image(Image.new("RGB", (w, h), (200, 30, 30)), processor)
        for w, h in ((56, 56), (112, 56), (60, 90))
    ]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    question=untrusted,
    choices=st.none() | st.lists(untrusted, max_size=4),
    tool_text=untrusted,
    n_images=st.integers(0, 3),
    n_tool_images=st.integers(0, 2),
    segments=st.none() | st.lists(untrusted, min_size=1, max_size=5),
)
def test_assembly_places_exactly_the_given_images(
    processor, encoded, question, choices, tool_text, n_images, n_tool_images, segments
):
    """Whatever the untrusted text holds, the sequence has one vision block per image,
    placeholders equal features, and the only control tokens are the template's."""
    b = SequenceBuilder(processor)
    images = encoded[:n_images]
    user = fmt.user_prompt(question, n_images, choices or None, segments=segments)
    assert user.n_images == n_images
    b.start("system", user, images)
    b.add_sampled([processor.token_id("<|im_end|>")], [0.0])
    b.close_assistant()
    crops = encoded[:n_tool_images]
    first = n_images + 1 if crops else None
    b.add_tool_turn(fmt.tool_response_text(tool_text, first, len(crops)), crops)
    b.check_parity()
    ids = b.token_ids
    assert ids.count(b.vision_start_id) == ids.count(b.vision_end_id) == n_images + n_tool_images
    # template: system, user, assistant (+ tool user, assistant) turns open and close
    assert ids.count(processor.token_id("<|im_start|>")) == 5
    assert ids.count(b.im_end_id) == 4  # system, user, the sampled one, the tool turn
    assert not any(math.isnan(x) for x in b.logprobs)


# What a sampler can emit: anything but the vision tokens it suppresses.
model_text = untrusted.map(
    lambda t: (
        t.replace("<|image_pad|>", "").replace("<|vision_start|>", "").replace("<|vision_end|>", "")
    )
)
zoom_call = st.builds(
    lambda image, box: (
        '<tool_call>{"name": "zoom", "arguments": {"image": '
        + image
        + ', "bbox": '
        + box
        + "}}</tool_call>"
    ),
    st.sampled_from(["1", "2", "0", "-1", "3", '"1"', "1.5", "1e999", "7" * 5000, "null", "[]"]),
    st.sampled_from(
        [
            "[0, 0, 20, 20]",
            "[20, 20, 0, 0]",
            "[0, 0, 0, 0]",
            "[NaN, 0, 5, 5]",
            "[1, 2]",
            '"x"',
            "[-1e9, -1e9, 1e9, 1e9]",
            "[0, 0, Infinity, 5]",
            "null",
        ]
    ),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    question=untrusted,
    turns=st.lists(model_text | zoom_call, min_size=1, max_size=3),
)
def test_a_rollout_survives_any_question_and_any_model_text(processor, question, turns):
    """The rollout loop with zoom/view tools: adversarial questions, tool calls with
    out-of-range, non-numeric and overflowing arguments, markup in the model's text."""
    import io

    from miva.agent.engines.scripted import ScriptedEngine
    from miva.agent.rollout import Agent
    from miva.agent.tools import build_tools
    from miva.config import load_config

    buf = io.BytesIO()
    Image.new("RGB", (56, 56), (0, 0, 255)).save(buf, format="PNG")
    cfg = load_config("tiny-cpu").agent
    sample = Sample(
        task="t", images=[buf.getvalue()] * 2, question=question, answer_type="text", answer="x"
    )
    engine = ScriptedEngine(processor, lambda key, turn: turns[min(turn, len(turns) - 1)])
    (traj,) = Agent(processor, cfg, build_tools(cfg), engine).rollout([sample])
    traj.check()  # statuses, masks; assembly already checked placeholders == features
    assert traj.status in (
        "ok",
        "truncated",
        "malformed",
        "tool_error",
        "max_turns",
        "image_budget",
    )
