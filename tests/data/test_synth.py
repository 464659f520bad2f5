"""Synthesis: determinism, answers re-derived from the scene graph, verifier, balance."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from miva.config import TASKS, SynthesizeConfig
from miva.data.io import dataset_digest
from miva.data.synth.generate import sample_seed, split_plan, synthesize
from miva.data.synth.scene import ImageSpec, Obj, Scene, caption, describe
from miva.data.synth.solver import rederive, solve
from miva.data.synth.verifier import (
    assign_balanced,
    balance_violations,
    fair_image_shares,
    verify,
)


def _cfg(**kw) -> SynthesizeConfig:
    base = {"n": 42, "image_size": 112, "images_per_sample": (2, 4), "workers": 1, "seed": 5}
    return SynthesizeConfig(**{**base, **kw})


def _digest(samples) -> str:
    ids: dict[str, list[str]] = {}
    for s in samples:
        ids.setdefault(s.split, []).append(s.id)
    return dataset_digest(ids)


@pytest.fixture(scope="module")
def generated():
    # 5 samples of each family (closeup included), 448 px as in the default preset
    cfg = _cfg(n=5 * len(TASKS), image_size=448, workers=2, tasks=list(TASKS))
    return synthesize(cfg, progress=False).samples


def test_same_seed_same_digest_and_workers_do_not_matter():
    one = synthesize(_cfg(workers=1), progress=False).samples
    two = synthesize(_cfg(workers=2), progress=False).samples
    again = synthesize(_cfg(workers=1), progress=False).samples
    other = synthesize(_cfg(workers=1, seed=6), progress=False).samples
    assert _digest(one) == _digest(two) == _digest(again)
    assert [s.id for s in one] == [s.id for s in two]
    assert _digest(other) != _digest(one)


def test_sample_seed_depends_on_seed_and_index_only():
    assert sample_seed(0, 3) == sample_seed(0, 3)
    assert len({sample_seed(0, i) for i in range(100)}) == 100
    assert sample_seed(1, 3) != sample_seed(0, 3)


def test_split_plan_has_exact_counts():
    # 0.8 * 11 = 8.8, 0.1 * 11 = 1.1 twice -> floors 8, 1, 1; one left goes to the largest
    # remainder (train, 0.8) -> 9, 1, 1
    labels = split_plan(11, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    assert Counter(labels) == {"train": 9, "val": 1, "test": 1}


def test_every_answer_rederives_from_the_scene_graph(generated):
    assert {s.task for s in generated} == set(TASKS)
    for s in generated:
        assert rederive(s.meta, s.answer_type, s.choices) == s.answer, (s.task, s.question)
        scene = Scene.from_dict(s.meta["scene"])
        sol = solve(scene, s.meta["query"])
        assert [(e.image, list(e.bbox)) for e in s.evidence] == [
            (k, [float(v) for v in box]) for k, box in sol.evidence
        ]
        assert s.evidence, s.task
        for e in s.evidence:
            assert 1 <= e.image <= len(s.images)
            x1, y1, x2, y2 = e.bbox
            assert 0 <= x1 < x2 <= 448 and 0 <= y1 < y2 <= 448


def test_sample_fields_follow_the_contract(generated):
    answer_types = Counter(s.answer_type for s in generated)
    assert set(answer_types) >= {"choice", "number", "image_index", "bbox", "image_bbox"}
    for s in generated:
        assert 2 <= len(s.images) <= 4
        assert s.image(1).size == (448, 448)
        assert len(s.meta["captions"]) == len(s.images)
        assert s.meta["template"].split("#")[0].split("/")[0] == s.task
        assert s.question.startswith(s.meta["stem"])
        if s.answer_type == "choice":
            assert s.choices and s.answer in "ABCD"[: len(s.choices)]
            assert f"({s.answer}) {s.choices['ABCD'.index(s.answer)]}" in s.question
        else:
            assert s.choices is None


def test_fine_grained_targets_are_small(generated):
    # grounding targets cover a few percent of the image: zooming in helps
    for s in generated:
        if s.task in ("grounding", "group_grounding", "selection", "attribute"):
            x1, y1, x2, y2 = s.evidence[0].bbox
            assert (x2 - x1) * (y2 - y1) / 448**2 < 0.04


def test_no_image_shared_across_splits():
    samples = synthesize(_cfg(n=60), progress=False).samples
    where: dict[str, set[str]] = {}
    for s in samples:
        for blob in s.images:
            where.setdefault(hashlib.sha256(blob).hexdigest(), set()).add(s.split)
    assert all(len(splits) == 1 for splits in where.values())


# ---------------------------------------------------------------- verifier, planted items


def _obj(shape="circle", colour="red", size="small", box=(10, 10, 70, 70), **kw) -> Obj:
    return Obj(shape=shape, colour=colour, size=size, bbox=list(box), **kw)


def _scene(*images: list[Obj]) -> Scene:
    return Scene(448, [ImageSpec("white", list(objs)) for objs in images])


def test_verifier_rejects_two_equally_valid_answers():
    target = {"size": "small", "colour": "red", "shape": "circle"}
    scene = _scene([_obj(), _obj(box=(200, 200, 260, 260))], [_obj(colour="blue")])
    sol = solve(scene, {"task": "grounding", "image": 1, "target": target})
    reasons = verify("grounding", sol, 448)
    assert reasons and reasons[0].startswith("ambiguous")
    # control: with one of the two recoloured the same item is kept
    scene.images[0].objects[1].colour = "green"
    assert (
        verify("grounding", solve(scene, {"task": "grounding", "image": 1, "target": target}), 448)
        == []
    )


def test_verifier_rejects_a_tie_and_duplicate_options():
    target = {"colour": "red"}
    scene = _scene([_obj()], [_obj(box=(100, 100, 160, 160))], [_obj(colour="blue")])
    sol = solve(scene, {"task": "comparison", "kind": "most", "target": target})
    assert any(r.startswith("ambiguous") for r in verify("comparison", sol, 448))
    sol = solve(scene, {"task": "counting", "target": target})
    reasons = verify("counting", sol, 448, choices=["2", "3", "2", "4"], answer_text="2")
    assert any("same text" in r for r in reasons)


def test_verifier_rejects_a_target_below_the_minimum_visible_size():
    target = {"size": "small", "colour": "red", "shape": "circle"}
    tiny = _scene([_obj(box=(10, 10, 16, 16))], [_obj(colour="blue")])  # 6 px at 448 px
    sol = solve(tiny, {"task": "group_grounding", "target": target})
    reasons = verify("group_grounding", sol, 448, min_side_fraction=0.04)  # limit 17.9 px
    assert reasons and reasons[0].startswith("too_small")
    ok = _scene([_obj(box=(10, 10, 30, 30))], [_obj(colour="blue")])  # 20 px
    assert (
        verify("group_grounding", solve(ok, {"task": "group_grounding", "target": target}), 448)
        == []
    )


def test_verifier_rejects_cross_image_item_answerable_from_one_image():
    target = {"colour": "red"}
    one = _scene([_obj(), _obj(box=(200, 200, 260, 260))], [_obj(colour="blue")])
    reasons = verify("counting", solve(one, {"task": "counting", "target": target}), 448)
    assert reasons == ["single_image: a cross-image item is answerable from one image alone"]
    two = _scene([_obj()], [_obj(box=(200, 200, 260, 260))])
    assert verify("counting", solve(two, {"task": "counting", "target": target}), 448) == []


def test_difference_solver_finds_the_one_change():
    base = [_obj(), _obj(shape="square", colour="blue", box=(200, 200, 260, 260))]
    changed = [_obj(colour="green"), base[1]]
    scene = _scene(base, base, changed)
    sol = solve(scene, {"task": "difference", "kind": "odd_image"})
    assert sol.value == 3 and sol.images_used == {1, 3}
    sol = solve(scene, {"task": "difference", "kind": "changed_colour", "a": 1, "b": 3})
    assert sol.value == "green" and sol.evidence == [(1, [10, 10, 70, 70]), (3, [10, 10, 70, 70])]
    sol = solve(scene, {"task": "difference", "kind": "odd_image"})
    same = _scene(base, base, base)
    assert verify("difference", solve(same, {"task": "difference", "kind": "odd_image"}), 448)


# ---------------------------------------------------------------- balance


def test_fair_image_shares_by_hand():
    # items with 2 and 4 images: image 1 -> (1/2 + 1/4) / 2 = 0.375; image 3 -> (0 + 1/4) / 2
    shares = fair_image_shares([2, 4])
    assert shares == pytest.approx({1: 0.375, 2: 0.375, 3: 0.125, 4: 0.125})


def test_assign_balanced_by_hand():
    # 12 three-option items: quota of each letter = 12 * 1/3 = 4 -> each letter exactly 4 times
    assert Counter(assign_balanced([3] * 12, [i / 12 for i in range(12)])) == {0: 4, 1: 4, 2: 4}
    # sizes [2, 2, 4, 4]: quotas p0 = p1 = 1/2 + 1/2 + 1/4 + 1/4 = 1.5, p2 = p3 = 0.5; the
    # 2-option items go first and take p0 and p1; all four quotas then have 0.5 left
    out = assign_balanced([2, 2, 4, 4], [0.0, 0.6, 0.0, 0.0])
    assert sorted(out[:2]) == [0, 1]


def test_assign_balanced_stays_within_one_item_of_every_quota():
    import random

    rng = random.Random(0)
    for _ in range(50):
        sizes = [rng.randint(2, 6) for _ in range(rng.randint(1, 60))]
        out = assign_balanced(sizes, [rng.random() for _ in sizes])
        assert all(0 <= p < n for p, n in zip(out, sizes, strict=True))
        got = Counter(out)
        for p in range(6):
            quota = sum(1 / n for n in sizes if p < n)
            assert abs(got[p] - quota) < 1 + 1e-9


def test_balance_violations_flags_a_skewed_split():
    items = [{"answer_type": "choice", "answer": "A", "n_images": 2}] * 6 + [
        {"answer_type": "choice", "answer": "B", "n_images": 2}
    ] * 4
    assert any("option A" in v for v in balance_violations(items))
    imgs = [{"answer_type": "image_index", "answer": 1, "n_images": 2}] * 7 + [
        {"answer_type": "image_bbox", "answer": {"image": 2, "bbox": [0, 0, 1, 1]}, "n_images": 2}
    ] * 3
    assert any("image 1" in v for v in balance_violations(imgs))  # 70% > 50% + 10%


def test_generated_split_is_balanced():
    samples = synthesize(_cfg(n=280), progress=False).samples
    for split in ("train", "val", "test"):
        rows = [
            {"answer_type": s.answer_type, "answer": s.answer, "n_images": len(s.images)}
            for s in samples
            if s.split == split
        ]
        assert balance_violations(rows) == [], split
    train = [s for s in samples if s.split == "train"]
    letters = Counter(s.answer for s in train if s.answer_type == "choice")
    assert max(letters.values()) / sum(letters.values()) <= 0.40


def test_captions_name_every_object():
    scene = _scene(
        [
            _obj(label="K3"),
            _obj(
                shape="square",
                colour="blue",
                size="large",
                box=(300, 300, 420, 420),
                texture="striped",
            ),
        ]
    )
    text = caption(scene.images[0], 448)
    assert (
        text
        == "a small red circle labelled 'K3' at top left, a large striped blue square at bottom right"
    )
    assert describe({"colour": "red"}, plural=True) == "red objects"


def test_coarse_detail_gives_one_large_object_per_image_and_colour_targets():
    samples = synthesize(
        _cfg(n=30, tasks=["selection"], detail="coarse", image_size=56, images_per_sample=(3, 3)),
        progress=False,
    ).samples
    assert len(samples) == 30
    for s in samples:
        scene = s.meta["scene"]
        # the holder's object was replaced by the target: no image has more objects than another
        assert [len(im["objects"]) for im in scene["images"]] == [1, 1, 1]
        assert set(s.meta["query"]["target"]) == {"colour"}
        assert all(
            o["size"] == "large" and o["label"] is None
            for im in scene["images"]
            for o in im["objects"]
        )
        colour = s.meta["query"]["target"]["colour"]
        holders = [
            k for k, im in enumerate(scene["images"], 1) if im["objects"][0]["colour"] == colour
        ]
        assert holders == [int(s.answer)]


def test_coarse_attribute_asks_about_the_one_object_of_the_named_image():
    samples = synthesize(
        _cfg(n=24, tasks=["attribute"], detail="coarse", image_size=56, images_per_sample=(3, 3)),
        progress=False,
    ).samples
    kinds = set()
    for s in samples:
        query, images = s.meta["query"], s.meta["scene"]["images"]
        assert [len(im["objects"]) for im in images] == [1, 1, 1]
        assert f"image {query['image']}" in s.question.lower()
        value = images[query["image"] - 1]["objects"][0][query["ask"]]
        if s.answer_type == "choice":
            assert s.choices[ord(s.answer) - 65] == value
        else:
            assert s.answer == value
        kinds.add((query["ask"], s.answer_type))
    assert {"colour", "shape"} <= {ask for ask, _ in kinds}
    assert {"text", "choice"} <= {t for _, t in kinds}
