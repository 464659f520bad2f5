"""MIRG-RL dual grounding reward: image level and object level (IoU only when the image is right).

For `image_bbox` answers: ``grounding_image`` = 1[predicted image == reference image],
``grounding_object`` = IoU (or 1[IoU >= t]) when the image is right, else 0. For `bbox`
answers the object reward is the IoU and the image reward 1; for `image_index` answers the
image reward is the accuracy. Other answer types score 0 on both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from miva.rl.rewards._common import prediction
from miva.scoring import image_bbox_rewards, score_bbox, score_image_index


def _dual(traj: Any, sample: Any, cfg: Any) -> tuple[float, float]:
    pred = prediction(traj, sample, cfg)
    if pred is None:
        return 0.0, 0.0
    if sample.answer_type == "image_bbox":
        return image_bbox_rewards(pred, sample.answer, cfg.iou_threshold)
    if sample.answer_type == "bbox":
        return 1.0, score_bbox(pred, sample.answer, cfg.iou_threshold)
    if sample.answer_type == "image_index":
        return score_image_index(pred, sample.answer), 0.0
    return 0.0, 0.0


def grounding_image_reward(
    trajectories: Sequence[Any], samples: Sequence[Any], cfg: Any
) -> list[float]:
    """Image-level reward.

    >>> from types import SimpleNamespace as NS
    >>> s = NS(answer_type="image_bbox", answer={"image": 2, "bbox": [0, 0, 4, 4]})
    >>> t = NS(turns=[NS(role="assistant", text="<answer>image 2: [0, 0, 4, 2]</answer>")])
    >>> grounding_image_reward([t], [s], NS(iou_threshold=None))
    [1.0]
    """
    return [_dual(t, s, cfg)[0] for t, s in zip(trajectories, samples, strict=True)]


def grounding_object_reward(
    trajectories: Sequence[Any], samples: Sequence[Any], cfg: Any
) -> list[float]:
    """Object-level IoU reward that counts only when the image is right.

    >>> from types import SimpleNamespace as NS
    >>> s = NS(answer_type="image_bbox", answer={"image": 2, "bbox": [0, 0, 4, 4]})
    >>> right = NS(turns=[NS(role="assistant", text="<answer>image 2: [0, 0, 4, 2]</answer>")])
    >>> wrong = NS(turns=[NS(role="assistant", text="<answer>image 1: [0, 0, 4, 4]</answer>")])
    >>> grounding_object_reward([right, wrong], [s, s], NS(iou_threshold=None))
    [0.5, 0.0]
    """
    return [_dual(t, s, cfg)[1] for t, s in zip(trajectories, samples, strict=True)]
