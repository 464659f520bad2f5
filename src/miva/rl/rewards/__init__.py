"""Reward functions: one module per family, combined by config weights in `registry`.

`accuracy` holds the ONE implementation of every answer metric (also used by evaluation):
`score_answer`, `score_choice`, `score_number`, `exact_match`, `token_f1`,
`score_image_index`, `box_iou`, `score_bbox`, `image_bbox_rewards`, `score_image_bbox`.
"""

from miva.rl.rewards.registry import REWARDS, get_reward, reward_weights, score

__all__ = ["REWARDS", "get_reward", "reward_weights", "score"]
