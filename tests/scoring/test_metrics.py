"""Aggregation and detection metrics against hand-computed values."""

import math

import pytest

from miva.scoring import (
    Detection,
    acc_at_iou,
    average_precision,
    box_iou,
    cjk_spaced,
    cycle_accuracy,
    macro_mean,
    match_detections,
    mean,
    pass_at_k,
    per_group_means,
)


def test_means_per_group_and_macro():
    # task a: 1, 0 -> 0.5; task b: 1, 1, 1 -> 1.0; macro 0.75, micro 4/5
    groups = ["a", "a", "b", "b", "b"]
    values = [1, 0, 1, 1, 1]
    by = per_group_means(groups, values)
    assert by == {"a": 0.5, "b": 1.0}
    assert macro_mean(by) == 0.75
    assert mean(values) == 0.8
    assert mean([]) == 0.0
    with pytest.raises(ValueError):
        per_group_means(["a"], [1, 2])


def test_acc_at_iou_counts_the_threshold_itself():
    assert acc_at_iou([0.5, 0.4999, 1.0, 0.0]) == 0.5
    assert acc_at_iou([0.3, 0.7], threshold=0.3) == 1.0


def test_pass_at_k_matches_its_definition_by_enumeration():
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10 = 0.7
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)  # k=1 is the plain success rate
    assert pass_at_k(3, 1, 3) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_cycle_accuracy_averages_cycles_not_items():
    # cycle c0: 1/1, cycle c1: 1/3 -> (1 + 1/3) / 2 = 2/3; micro would be 2/4
    assert cycle_accuracy(["c0", "c1", "c1", "c1"], [1, 1, 0, 0]) == pytest.approx(2 / 3)


def test_average_precision_hand_computed():
    # 3 ground truths; TP, FP, TP, FP, FP -> recall 1/3,1/3,2/3,2/3,2/3,
    # precision 1, 1/2, 2/3, 1/2, 2/5; envelope 1, 2/3, 2/3, 1/2, 2/5.
    # recall points 0.00-0.33 (34) -> 1; 0.34-0.66 (33) -> 2/3; 0.67-1.00 (34) -> 0
    # AP = (34 + 33 * 2/3) / 101 = 56/101
    matches = [(1, True), (1, False), (1, True), (1, False), (1, False)]
    assert average_precision(matches, 3) == pytest.approx(56 / 101)
    assert average_precision([], 2) == 0.0
    assert average_precision([(1, True)], 1) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        average_precision([], 0)


def test_match_detections_one_ground_truth_per_detection_and_confidence_order():
    gts = {"img": [[0, 0, 10, 10]]}
    dets = [
        Detection("img", (0, 0, 10, 10), confidence=0.2),
        Detection("img", (0, 0, 10, 9), confidence=0.9),  # IoU 0.9, matched first
        Detection("other", (0, 0, 10, 10), confidence=0.5),  # no ground truth there
    ]
    out = match_detections(dets, gts, box_iou, 0.5)
    assert out == [(0.9, True), (0.5, False), (0.2, False)]


def test_cjk_is_tokenised_per_character():
    assert cjk_spaced("上海，中国") == "上 海 中 国"
    assert cjk_spaced("abc") == "abc"
    assert math.isclose(len(cjk_spaced("東京タワー").split()), 5)
