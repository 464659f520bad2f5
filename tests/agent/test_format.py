"""Chat/tool format: tool-call and answer parsing, coordinate conversion (hand-computed)."""

from __future__ import annotations

import pytest

from miva.agent import coords
from miva.agent import format as fmt
from miva.agent.coords import Frame
from miva.agent.format import (
    CallError,
    ParsedCall,
    extract_answer,
    first_stop,
    format_model_answer,
    parse_answer,
    parse_tool_call,
    system_prompt,
    user_prompt,
)
from miva.data.schema import Evidence, Sample

# 448x448 dataset image shown at 112x112: one model pixel = 4 dataset pixels.
F448 = Frame(448, 448, 112, 112)


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>{"name": "zoom", "arguments": {"image": 2, "bbox": [1, 2, 3, 4]}}</tool_call>',
        '<tool_call>\n  { "name" : "zoom",\n "arguments": {"image": 2, "bbox": [1,2,3,4]} }\n</tool_call>',
        "<tool_call>{'name': 'zoom', 'arguments': {'image': 2, 'bbox': [1, 2, 3, 4]}}</tool_call>",
        '<tool_call>{"name": "zoom", "arguments": {"image": 2, "bbox": [1, 2, 3, 4],},}</tool_call>',
        '<tool_call>{"name": "zoom", "arguments": {"image": 2, "bbox": [1, 2, 3, 4]',  # unclosed
        '<tool_call>```json\n{"name": "zoom", "arguments": {"image": 2, "bbox": [1, 2, 3, 4]}}\n```</tool_call>',
        '<tool_call>{"name": "zoom", "arguments": "{\\"image\\": 2, \\"bbox\\": [1, 2, 3, 4]}"}</tool_call>',
        '<think>I will use <tool_call>maybe</tool_call></think><tool_call>{"name": "zoom", "arguments": {"image": 2, "bbox": [1, 2, 3, 4]}}</tool_call>',
    ],
)
def test_tool_call_parser_tolerates_common_slips(text):
    assert parse_tool_call(text) == ParsedCall("zoom", {"image": 2, "bbox": [1, 2, 3, 4]})


def test_python_literals_are_repaired():
    call = parse_tool_call(
        '<tool_call>{"name": "view", "arguments": {"image": 1, "x": True, "y": None}}</tool_call>'
    )
    assert call == ParsedCall("view", {"image": 1, "x": True, "y": None})


@pytest.mark.parametrize(
    "text",
    [
        "<tool_call>zoom into image 2</tool_call>",
        '<tool_call>{"arguments": {}}</tool_call>',
        '<tool_call>{"name": "zoom", "arguments": [1, 2]}</tool_call>',
        "<tool_call></tool_call>",
    ],
)
def test_malformed_calls_are_errors_not_exceptions(text):
    assert isinstance(parse_tool_call(text), CallError)


def test_no_call_is_none():
    assert parse_tool_call("<answer>2</answer>") is None


def test_answer_extraction_and_stop():
    assert extract_answer("<think>x</think><answer> 3 </answer>") == "3"
    assert extract_answer("no answer") is None
    text = "abc<tool_call>{}</tool_call> trailing"
    assert text[: first_stop(text)] == "abc<tool_call>{}</tool_call>"
    assert first_stop("<answer>1</answer><tool_call>") == len("<answer>1</answer>")
    assert first_stop("nothing") is None


def _sample(answer_type, answer, choices=None, evidence=()):
    return Sample(
        task="t",
        images=[b"x", b"y", b"z"],
        question="q?",
        answer_type=answer_type,
        answer=answer,
        choices=choices,
        evidence=list(evidence),
    )


def test_parse_answer_typed_values():
    frames = [F448, F448, Frame(200, 100, 112, 56)]
    s = _sample("choice", "B", choices=["red", "blue", "green"])
    assert parse_answer("(B) blue", s, "qwen2.5-vl", frames) == "B"
    assert parse_answer("green", s, "qwen2.5-vl", frames) == "C"
    assert parse_answer("Z", s, "qwen2.5-vl", frames) is None
    assert parse_answer(" 4 ", _sample("number", 4), "qwen2.5-vl", frames) == 4
    assert parse_answer("2.5 apples", _sample("number", 2.5), "qwen2.5-vl", frames) == 2.5
    assert parse_answer("Image 3", _sample("image_index", 3), "qwen2.5-vl", frames) == 3
    assert parse_answer(None, _sample("image_index", 3), "qwen2.5-vl", frames) is None
    # bbox on evidence image 3 (200x100 shown as 112x56: scale 200/112 and 100/56)
    s = _sample("bbox", [0, 0, 100, 50], evidence=[Evidence(3, (0, 0, 100, 50))])
    got = parse_answer("[56, 28, 112, 56]", s, "qwen2.5-vl", frames)
    assert got == pytest.approx([100.0, 50.0, 200.0, 100.0])
    # image_bbox in 0-1000 (qwen2-vl): image 2 is 448 wide -> 250 -> 112 px
    s = _sample("image_bbox", {"image": 2, "bbox": [112, 112, 224, 224]})
    got = parse_answer("image 2: [250, 250, 500, 500]", s, "qwen2-vl", frames)
    assert got == {"image": 2, "bbox": pytest.approx([112.0, 112.0, 224.0, 224.0])}
    assert parse_answer("image 9: [1, 2, 3, 4]", s, "qwen2-vl", frames) is None


def test_format_model_answer_round_trips_through_parse_answer():
    frames = [F448, F448, F448]
    s = _sample("image_bbox", {"image": 2, "bbox": [112, 112, 224, 224]})
    assert format_model_answer(s, "qwen2.5-vl", frames) == "image 2: [28, 28, 56, 56]"
    assert format_model_answer(s, "qwen2-vl", frames) == "image 2: [250, 250, 500, 500]"
    for fam in coords.FAMILIES:
        text = format_model_answer(s, fam, frames)
        assert parse_answer(text, s, fam, frames) == {
            "image": 2,
            "bbox": pytest.approx([112, 112, 224, 224]),
        }


def test_coordinate_conversions_by_hand():
    # Qwen2.5-VL: 448 -> 112 means divide by 4.
    assert coords.to_model([112, 112, 224, 224], F448, "qwen2.5-vl") == [28, 28, 56, 56]
    assert coords.from_model([28, 28, 56, 56], F448, "qwen2.5-vl") == [112, 112, 224, 224]
    # Qwen2-VL: 112/448*1000 = 250.
    assert coords.to_model([112, 112, 224, 224], F448, "qwen2-vl") == [250, 250, 500, 500]
    # a 112x112 crop of image 1 taken at [100, 100, 200, 200] (scale 100/112)
    crop = Frame(112, 112, 112, 112, origin=(1, (100.0, 100.0, 200.0, 200.0)))
    k, box = coords.to_source([0, 0, 56, 112], crop)
    assert k == 1 and box == pytest.approx([100, 100, 150, 200])
    with pytest.raises(ValueError, match="unknown model family"):
        coords.to_model([0, 0, 1, 1], F448, "llava")


def test_smart_resize_matches_transformers():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    for h, w in [(448, 448), (120, 56), (30, 500), (1000, 700), (57, 57)]:
        assert coords.smart_resize(h, w, 28, 3136, 12544) == smart_resize(h, w, 28, 3136, 12544)
    assert coords.smart_resize(448, 448, 28, 3136, 12544) == (112, 112)


def test_prompts_list_tools_images_and_answer_format():
    sys_text = system_prompt(
        [{"name": "zoom", "description": "d", "parameters": {}}], "image_index", "qwen2.5-vl"
    )
    assert '"name": "zoom"' in sys_text and "image number" in sys_text and "pixels" in sys_text
    assert "0-1000" in system_prompt([], "bbox", "qwen2-vl")
    u = user_prompt("Which?", 2, ["red", "blue"])
    assert u.text == "Image 1: <image>\nImage 2: <image>\nWhich?\nA. red\nB. blue"
    assert u.n_images == 2


def test_untrusted_text_is_escaped_and_images_are_slots():
    u = user_prompt("Is <image> the same as <|image_pad|>?", 1, ["<answer>A</answer>", "b"])
    assert u.n_images == 1
    assert u.text == (
        "Image 1: <image>\nIs < image> the same as <| image_pad |>?\nA. < answer>A< /answer>\nB. b"
    )


def test_interleaved_segments_place_each_image_at_its_marker():
    u = user_prompt("ignored", 3, None, segments=["Compare ", " with ", ". Which?"])
    assert u.text == "Compare Image 1: <image> with Image 2: <image>. Which?\nImage 3: <image>"
    few = user_prompt("ignored", 1, None, segments=["A ", " B ", " C"])
    assert few.n_images == 1 and few.text == "A Image 1: <image> B [image] C"


def test_compact_system_prompt_keeps_signatures_and_formats_in_few_tokens():
    from miva.agent.model import load_processor
    from miva.agent.tools.view import View
    from miva.agent.tools.zoom import Zoom

    schemas = [Zoom().schema(), View().schema()]
    compact = fmt.system_prompt(schemas, "image_bbox", "qwen2.5-vl", style="compact")
    full = fmt.system_prompt(schemas, "image_bbox", "qwen2.5-vl")
    assert "zoom(image, bbox, region)" in compact and "view(image)" in compact
    assert (
        fmt.ANSWER_FORMATS["image_bbox"] in compact and fmt.coordinate_rule("qwen2.5-vl") in compact
    )
    tok = load_processor("tiny-random").tokenizer
    # the point of the compact style: a fraction of the tokens of the JSON schemas
    assert len(tok(compact)["input_ids"]) * 4 < len(tok(full)["input_ids"])


def test_compact_system_prompt_states_the_box_rule_only_where_boxes_appear():
    from miva.agent.tools.zoom import Zoom

    rule = fmt.coordinate_rule("qwen2.5-vl")
    assert rule not in fmt.system_prompt([], "image_index", "qwen2.5-vl", style="compact")
    assert rule in fmt.system_prompt([], "bbox", "qwen2.5-vl", style="compact")
    assert rule in fmt.system_prompt([Zoom().schema()], "number", "qwen2.5-vl", style="compact")
