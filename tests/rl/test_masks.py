"""The trajectory-level mask: each status policy, and its effect on advantages."""

from __future__ import annotations

import pytest
import torch

from miva.config import GRPOConfig
from miva.rl.advantages import grpo_advantages
from miva.rl.masks import apply_status_policy


@pytest.mark.parametrize(
    ("action", "reward_out", "valid"),
    [("train", 0.7, True), ("mask", 0.7, False), ("penalize", -2.0, True)],
)
def test_each_policy(action, reward_out, valid):
    r = apply_status_policy(["truncated"], [0.7], {"truncated": action}, penalty=-2.0)
    assert r.rewards == [reward_out] and r.valid == [valid]
    assert r.fractions == {"truncated": 1.0}


def test_default_policy_covers_every_status():
    from miva.agent.trajectory import STATUSES

    policy = GRPOConfig().status_policy
    r = apply_status_policy(list(STATUSES), [1.0] * len(STATUSES), policy)
    assert r.valid == [policy[s] != "mask" for s in STATUSES]


def test_masked_trajectory_gets_zero_advantage_and_leaves_stats():
    # group rewards [1, 1, 0, 0]; the 2nd (truncated) is masked -> valid [1, 0, 0]
    # mean 1/3, devs [2/3, -1/3, -1/3], none-std advantages
    r = apply_status_policy(
        ["ok", "truncated", "ok", "ok"], [1, 1, 0, 0], {"ok": "train", "truncated": "mask"}
    )
    adv = grpo_advantages(torch.tensor(r.rewards), 4, valid=torch.tensor(r.valid), std="none")
    assert adv.tolist() == pytest.approx([2 / 3, 0.0, -1 / 3, -1 / 3])


def test_unknown_status_or_policy():
    with pytest.raises(KeyError, match="known statuses"):
        apply_status_policy(["weird"], [0.0], {"ok": "train"})
    with pytest.raises(ValueError, match="known"):
        apply_status_policy(["ok"], [0.0], {"ok": "drop"})
