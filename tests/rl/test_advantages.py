"""Advantages against hand-computed values, every std mode, with masks."""

from __future__ import annotations

import math

import pytest
import torch

from miva.rl.advantages import get_advantage, grpo_advantages, zero_variance_groups

R = torch.tensor([1.0, 0.0, 0.5, 0.5, 2.0, 2.0, 2.0, 2.0])  # two groups of 4


def test_group_std():
    # group 1: mean 0.5, deviations [.5,-.5,0,0], unbiased var 0.5/3, std 0.408248
    s = math.sqrt(0.5 / 3)
    adv = grpo_advantages(R, 4, std="group", eps=1e-4)
    expected = [0.5 / (s + 1e-4), -0.5 / (s + 1e-4), 0, 0, 0, 0, 0, 0]  # group 2 constant -> 0
    assert adv.tolist() == pytest.approx(expected, rel=1e-6)


def test_batch_std():
    # batch mean irrelevant (group means are used); unbiased batch std of R:
    # mean 1.25, deviations -.25 -1.25 -.75 -.75 .75 .75 .75 .75,
    # squares .0625 + 1.5625 + .5625 + .5625 + 4 * .5625 = 5.0, var 5/7
    s = math.sqrt(5.0 / 7)
    adv = grpo_advantages(R, 4, std="batch", eps=0.0)
    assert adv.tolist() == pytest.approx([0.5 / s, -0.5 / s, 0, 0, 0, 0, 0, 0], rel=1e-6)


def test_no_std_is_dr_grpo():
    adv = grpo_advantages(R, 4, std="none")
    assert adv.tolist() == pytest.approx([0.5, -0.5, 0, 0, 0, 0, 0, 0])


def test_masked_trajectory_leaves_group_statistics():
    # mask the 0.0 reward: group 1 valid = [1, .5, .5] -> mean 2/3, devs [1/3,-1/6,-1/6],
    # unbiased var (1/9 + 1/36 + 1/36)/2 = 1/12, std 0.288675
    valid = torch.tensor([True, False, True, True, True, True, True, True])
    adv = grpo_advantages(R, 4, valid=valid, std="group", eps=0.0)
    s = math.sqrt(1 / 12)
    assert adv.tolist() == pytest.approx(
        [1 / 3 / s, 0.0, -1 / 6 / s, -1 / 6 / s, 0, 0, 0, 0], rel=1e-6
    )


def test_single_valid_member_gets_zero():
    valid = torch.tensor([True, False, False, False])
    assert grpo_advantages(torch.tensor([1.0, 0, 0, 0]), 4, valid=valid).tolist() == [0.0] * 4


def test_vectorised_matches_loop():
    g = torch.Generator().manual_seed(0)
    r = torch.rand(24, generator=g)
    valid = torch.rand(24, generator=g) > 0.3
    adv = grpo_advantages(r, 6, valid=valid, std="group", eps=1e-4)
    for gi in range(4):
        idx = [i for i in range(gi * 6, gi * 6 + 6) if valid[i]]
        vals = r[idx].double()
        mean = vals.mean()
        std = vals.std() if len(idx) > 1 else torch.tensor(0.0)
        for i in range(gi * 6, gi * 6 + 6):
            want = float((r[i] - mean) / (std + 1e-4)) if valid[i] else 0.0
            assert adv[i].item() == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_zero_variance_groups_respects_mask():
    valid = torch.tensor([True, False, True, True, True, True, True, True])
    r = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    assert zero_variance_groups(r, 4, valid).tolist() == [True, False]


def test_bad_input_errors():
    with pytest.raises(ValueError, match="divisible"):
        grpo_advantages(torch.zeros(5), 4)
    with pytest.raises(ValueError, match="known"):
        grpo_advantages(torch.zeros(4), 4, std="median")
    with pytest.raises(KeyError, match="known"):
        get_advantage("rloo")
