"""Pure pieces of the gate, checked against hand-computed values and plain loops."""

from __future__ import annotations

import doctest
import io
import random

import pyarrow as pa
import pytest
from PIL import Image

from miva.validate import balance, load, rows


@pytest.mark.parametrize("module", [rows, balance])
def test_doctests(module):
    assert doctest.testmod(module).failed == 0


def test_near_duplicates_matches_a_plain_pairwise_loop():
    rng = random.Random(0)
    words = ["red", "blue", "circle", "square", "left", "right", "image", "how", "many"]
    base = [" ".join(rng.choice(words) for _ in range(8)) for _ in range(30)]
    items = []
    for i in range(200):
        q = rng.choice(base)
        if rng.random() < 0.5:  # small edits: some stay above the threshold, some fall below
            q = q + rng.choice(["", "?", " ok", "s", " right"])
        items.append((i, f"r{i}", (f"img{rng.randrange(3)}",), q))
    t = 0.8
    fast = rows.near_duplicates(items, t)
    # plain loop: a row is a duplicate when it reaches t with an earlier kept row of its group
    kept: list[tuple[tuple, frozenset]] = []
    slow = set()
    for i, _, keys, q in items:
        s = rows.shingles(q)
        if any(k == keys and rows.jaccard(s, o) >= t for k, o in kept):
            slow.add(i)
        else:
            kept.append((keys, s))
    assert set(fast) == slow and slow


def test_near_duplicates_need_identical_images():
    q = "How many red circles are there in image 2?"
    assert rows.near_duplicates([(0, "a", ("x", "y"), q), (1, "b", ("x", "z"), q)], 0.95) == {}
    assert list(rows.near_duplicates([(0, "a", ("x",), q), (1, "b", ("x",), q + "!")], 0.95)) == [1]


def test_shared_images_keep_the_evaluation_split():
    out = rows.shared_images([(0, "train", ["h1", "h2"]), (1, "test", ["h2"]), (2, "val", ["h3"])])
    assert list(out) == [0] and "also in test" in out[0]
    out = rows.shared_images([(0, "val", ["h"]), (1, "train", ["h"]), (2, "test", ["h"])])
    assert sorted(out) == [0, 1]


def test_box_problem_edges():
    assert rows.box_problem([0, 0, 32, 32], (32, 32)) is None  # touching the border is inside
    assert rows.box_problem([0, 0, 32.0001, 32], (32, 32)) is None  # float32 rounding
    assert rows.box_problem([-1, 0, 3, 3], (32, 32)) == "outside the 32x32 image"
    assert rows.box_problem([0, 4, 3, 4], None) == "y2 <= y1"
    assert rows.box_problem([0, 0, 3], None) == "not four finite numbers"


def test_decode_image_reports_truncation():
    buf = io.BytesIO()
    Image.effect_noise((40, 40), 30).convert("RGB").save(buf, format="PNG")
    blob = buf.getvalue()
    size, key = rows.decode_image(blob)
    assert size == (40, 40) and len(key) == 24
    for cut in (len(blob) // 2, len(blob) - 1):
        with pytest.raises(ValueError, match="truncated"):
            rows.decode_image(blob[:cut])
    with pytest.raises(ValueError, match="no image bytes"):
        rows.decode_image(None)


def test_column_type_compatibility():
    from miva.data.io import arrow_schema

    exp = arrow_schema()
    assert load.compatible(pa.large_string(), exp.field("answer").type)
    assert not load.compatible(pa.int64(), exp.field("answer").type)
    assert load.compatible(pa.list_(pa.binary()), exp.field("images").type, column="images")
    assert load.compatible(pa.null(), exp.field("choices").type)
    ev = pa.list_(pa.struct([("image", pa.int64()), ("bbox", pa.list_(pa.float64()))]))
    assert load.compatible(ev, exp.field("evidence").type)
    assert not load.compatible(pa.list_(pa.string()), exp.field("evidence").type)
