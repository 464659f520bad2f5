"""Reward functions: one module per family, combined by config weights in `registry`.

Every answer metric they pay (`score_answer`, `score_choice`, `token_f1`, `box_iou`, ...)
has its ONE implementation in `miva.scoring`, which evaluation and the benchmarks share.
"""

from miva.rl.rewards.registry import REWARDS, get_reward, reward_weights, score

__all__ = ["REWARDS", "get_reward", "reward_weights", "score"]
