"""Scoring primitives: ONE implementation of each metric, used by the rewards, evaluation
and the benchmark adapters. Pure functions of strings, numbers and boxes (stdlib only); they
sit at the bottom of the layers, beside errors/config/storage, so every layer may score.

- `parse`: the scored ``<answer>`` tag, numbers, image numbers, boxes in model text.
- `text`: SQuAD normalisation, exact match, token F1, CJK tokenisation.
- `boxes`: IoU, accuracy at an IoU threshold, COCO-style detection AP.
- `answers`: the per-item score of each answer type (`score_answer` dispatches), choice
  matching, the correct-at threshold.
- `aggregate`: means per group, macro means, pass@k, HR-Bench's cycle accuracy.
"""

from miva.scoring.aggregate import cycle_accuracy, macro_mean, mean, pass_at_k, per_group_means
from miva.scoring.answers import (
    CHOICE_LETTERS,
    CORRECT_AT,
    gold_choice_index,
    image_bbox_rewards,
    is_correct,
    score_answer,
    score_bbox,
    score_choice,
    score_image_bbox,
    score_image_index,
    score_number,
    score_text,
)
from miva.scoring.boxes import (
    Detection,
    acc_at_iou,
    average_precision,
    box_iou,
    match_detections,
)
from miva.scoring.parse import (
    image_number,
    parse_box,
    parse_image_box,
    parse_image_index,
    parse_number,
    scored_answer,
)
from miva.scoring.text import cjk_spaced, exact_match, normalize_text, token_f1

__all__ = [
    "CHOICE_LETTERS",
    "CORRECT_AT",
    "Detection",
    "acc_at_iou",
    "average_precision",
    "box_iou",
    "cjk_spaced",
    "cycle_accuracy",
    "exact_match",
    "gold_choice_index",
    "image_bbox_rewards",
    "image_number",
    "is_correct",
    "macro_mean",
    "match_detections",
    "mean",
    "normalize_text",
    "parse_box",
    "parse_image_box",
    "parse_image_index",
    "parse_number",
    "pass_at_k",
    "per_group_means",
    "score_answer",
    "score_bbox",
    "score_choice",
    "score_image_bbox",
    "score_image_index",
    "score_number",
    "score_text",
    "scored_answer",
    "token_f1",
]
