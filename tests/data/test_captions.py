"""Caption data for pretraining: descriptions, their grading, and the closeup task."""

import random

import pytest

from miva.data.synth.captions import (
    CaptionSettings,
    caption_items,
    describe_text,
    description_scores,
    parse_description,
)
from miva.data.synth.scene import ImageSpec, Obj, Scene


def _scene() -> Scene:
    return Scene(
        112,
        [
            ImageSpec(
                "white",
                [
                    Obj("square", "blue", "small", [80, 80, 96, 96]),
                    Obj("circle", "red", "large", [4, 4, 34, 34]),
                ],
            ),
            ImageSpec("grey", [Obj("triangle", "green", "large", [40, 40, 70, 70])]),
        ],
    )


def test_description_names_objects_in_reading_order():
    text = describe_text(_scene())
    assert text == (
        "Image 1: large red circle at top left, small blue square at bottom right. "
        "Image 2: large green triangle at centre."
    )
    assert describe_text(_scene(), only=2) == "Image 2: large green triangle at centre."


def test_parse_inverts_describe():
    parsed = parse_description(describe_text(_scene()))
    assert parsed[1][1] == {
        "size": "small",
        "colour": "blue",
        "shape": "square",
        "position": "bottom right",
    }
    assert len(parsed[2]) == 1


def test_scores_of_a_perfect_and_a_wrong_description():
    scene = _scene()
    perfect = description_scores(describe_text(scene), scene)
    assert all(v == 1.0 for v in perfect.values())
    # image 1: second object's colour wrong, image 2 missing entirely
    said = "Image 1: large red circle at top left, small red square at bottom right."
    s = description_scores(said, scene)
    assert s["colour"] == pytest.approx(
        1 / 3
    )  # 1 of 3 objects right (the missing one counts wrong)
    assert s["shape"] == pytest.approx(2 / 3)
    assert s["count"] == pytest.approx(1 / 2)
    assert s["exact"] == 0.0


def test_caption_items_are_seeded_and_carry_gold():
    settings = CaptionSettings(image_sizes=(56, 112), images=(1, 2))
    a = caption_items(12, seed=3, settings=settings)
    b = caption_items(12, seed=3, settings=settings)
    assert [s.id for s in a] == [s.id for s in b]
    assert {s.task for s in a} == {"caption"}
    for s in a:
        assert s.meta["gold"].endswith("</answer>")
        assert 1 <= len(s.images) <= 2
        if s.meta["kind"] == "count":
            assert s.answer_type == "number" and s.answer >= 1
        else:
            assert s.answer.startswith("Image ")


def test_closeup_item_hides_a_small_object_in_one_cell():
    from miva.data.synth.questions import cell_box, write_closeup
    from miva.data.synth.scene import SceneDesigner, position_word
    from miva.data.synth.solver import solve

    for seed in range(20):
        d = SceneDesigner(random.Random(seed), 336)
        item = write_closeup(d, 2, mc=False)
        sol = solve(item.scene, item.query)
        (k, box), *_ = sol.evidence
        assert sol.candidates == 1 and sol.value in ("red", "green", "blue", "yellow", "purple")
        assert k == item.query["image"]
        side = box[2] - box[0]
        assert 0.04 * 336 <= side <= 0.06 * 336
        region = item.query["region"]
        assert position_word(box, 336) == region
        rows, cols = ("top", "middle", "bottom"), ("left", "centre", "right")
        r = c = 1
        if region != "centre":
            first, second = region.split()
            r, c = rows.index(first), cols.index(second)
        x1, y1, x2, y2 = cell_box(r, c, 336)
        assert x1 <= box[0] and box[2] <= x2 and y1 <= box[1] and box[3] <= y2
