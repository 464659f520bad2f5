"""Difficulty filter with simple policies whose pass rates are known by construction."""

from __future__ import annotations

import pytest

from miva.data.schema import Sample
from miva.data.synth.difficulty import exact_match, filter_by_difficulty, pass_rate


def _sample(answer, answer_type="number") -> Sample:
    return Sample(
        task="counting",
        images=[b"x", b"y"],
        question="How many?",
        answer_type=answer_type,
        answer=answer,
    )


def test_exact_match_uses_the_canonical_answer_text():
    assert exact_match(_sample(3), " 3 ") == 1.0
    assert exact_match(_sample(3), "4") == 0.0
    box = _sample({"image": 2, "bbox": [1, 2, 3, 4]}, "image_bbox")
    assert exact_match(box, "Image 2: [1, 2, 3, 4]") == 1.0


def test_keeps_items_solved_sometimes():
    samples = [_sample(v) for v in (1, 2, 3)]

    # answers the truth on the first `right[v]` of k=4 draws, then a wrong number
    right = {1: 4, 2: 0, 3: 1}

    def policy(sample, k):
        truth = int(sample.answer)
        return [str(truth) if i < right[truth] else str(truth + 1) for i in range(k)]

    result = filter_by_difficulty(samples, policy, k=4)
    # pass rates 4/4 = 1 (always solved), 0/4 = 0 (never), 1/4 = 0.25 (kept)
    assert result.rates == [1.0, 0.0, 0.25]
    assert [s.answer for s in result.kept] == [3]
    assert result.dropped == 2


def test_injected_scorer_and_bad_policy():
    s = _sample(10)

    def half_credit(sample, answer):
        return 0.5

    assert pass_rate(s, lambda sample, k: ["x"] * k, 3, half_credit) == 0.5
    with pytest.raises(ValueError, match="expected 4"):
        pass_rate(s, lambda sample, k: ["x"], 4)
    with pytest.raises(ValueError, match="k must be"):
        filter_by_difficulty([s], lambda sample, k: ["x"] * k, k=1)
