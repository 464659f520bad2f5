"""Per-item scores by answer type: ONE implementation of each, shared by the rewards
(`miva.rl.rewards`), evaluation (`miva.eval`) and the benchmark adapters.

Conventions:
- A prediction is the text inside ``<answer>...</answer>`` (`miva.scoring.parse.scored_answer`
  pulls it out of a whole response).
- Image numbers are 1-based; boxes are ``[x1, y1, x2, y2]`` in the dataset's pixel
  convention (the agent converts model-convention boxes before scoring).
- Every scorer returns a float in ``[0, 1]``; an unparseable prediction scores 0.

`score_answer(answer_type, prediction, answer, ...)` dispatches on the sample's answer type.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from miva.scoring.boxes import box_iou
from miva.scoring.parse import (
    MAX_PREDICTION_CHARS,
    parse_box,
    parse_image_box,
    parse_image_index,
    parse_number,
)
from miva.scoring.text import exact_match, normalize_text, token_f1

CHOICE_LETTERS = "ABCDEFGHIJ"


def gold_choice_index(answer: str, choices: Sequence[str] | None) -> int | None:
    """Index of the gold option: the answer is an option letter or an option's text."""
    ans = answer.strip()
    if choices:
        letters = CHOICE_LETTERS[: len(choices)]
        bare = ans.strip("()").rstrip(".):")
        if len(bare) == 1 and bare.upper() in letters:
            return letters.index(bare.upper())
        norm = [normalize_text(c) for c in choices]
        if normalize_text(ans) in norm:
            return norm.index(normalize_text(ans))
        return None
    bare = ans.strip("()").rstrip(".):")
    return (
        CHOICE_LETTERS.index(bare.upper())
        if len(bare) == 1 and bare.upper() in CHOICE_LETTERS
        else None
    )


def score_choice(prediction: str, answer: str, choices: Sequence[str] | None = None) -> float:
    """Option letter (``B``, ``(B)``, ``B.``, ``B) text``) or option text.

    >>> score_choice("(B)", "B", ["red", "blue"])
    1.0
    >>> score_choice("Blue", "B", ["red", "blue"])
    1.0
    >>> score_choice("A or B", "B", ["red", "blue"])
    0.0
    """
    gold = gold_choice_index(answer, choices)
    pred = prediction.strip()[:MAX_PREDICTION_CHARS]
    if gold is None:
        return exact_match(pred, answer)
    letters = CHOICE_LETTERS[: len(choices)] if choices else CHOICE_LETTERS
    match = re.fullmatch(r"\(?([A-J])\)?(?:[.):]\s*(.*))?", pred, re.S | re.I)
    if match and match.group(1).upper() in letters:
        picked = letters.index(match.group(1).upper())
        rest = match.group(2)
        if rest and choices and normalize_text(rest) != normalize_text(choices[picked]):
            return 0.0  # the letter and the text disagree
        return float(picked == gold)
    if choices:
        return float(normalize_text(pred) == normalize_text(choices[gold]))
    return 0.0


def score_number(prediction: str, answer: float, rel_tol: float = 0.0) -> float:
    """Exact, or within a relative tolerance.

    >>> score_number("There are 4.", 4)
    1.0
    >>> score_number("105", 100, rel_tol=0.05), score_number("106", 100, rel_tol=0.05)
    (1.0, 0.0)
    >>> score_number("9" * 400, 4)  # enormous numbers are just wrong
    0.0
    """
    value = parse_number(prediction)
    if value is None:
        return 0.0
    gold = float(answer)
    if rel_tol <= 0:
        return float(value == gold)
    return float(abs(value - gold) <= rel_tol * max(abs(gold), 1e-12))


def score_text(prediction: str, answer: str | Sequence[str]) -> float:
    """Open text is rewarded by token F1 (max over references); EM is `exact_match`.

    >>> score_text("a cat", ["cat", "kitten"])
    1.0
    """
    return token_f1(prediction, answer)


def score_image_index(prediction: str, answer: int) -> float:
    """The 1-based image number in the prediction equals the answer.

    >>> score_image_index("image 2", 2)
    1.0
    """
    return float(parse_image_index(prediction) == int(answer))


def _threshold(iou: float, iou_threshold: float | None) -> float:
    return iou if iou_threshold is None else float(iou >= iou_threshold)


def score_bbox(
    prediction: str, answer: Sequence[float], iou_threshold: float | None = None
) -> float:
    """Continuous IoU, or 1[IoU >= threshold].

    >>> round(score_bbox("[0, 0, 2, 2]", [1, 1, 3, 3]), 4)
    0.1429
    >>> score_bbox("[0, 0, 2, 2]", [0, 0, 2, 2.2], iou_threshold=0.5)
    1.0
    """
    box = parse_box(prediction)
    return 0.0 if box is None else _threshold(box_iou(box, answer), iou_threshold)


def image_bbox_rewards(
    prediction: str, answer: dict[str, Any], iou_threshold: float | None = None
) -> tuple[float, float]:
    """MIRG-RL dual reward: (image-level 1[image right], object-level IoU only when the image is right).

    >>> image_bbox_rewards("image 2: [0, 0, 2, 2]", {"image": 2, "bbox": [0, 0, 2, 2]})
    (1.0, 1.0)
    >>> image_bbox_rewards("image 1: [0, 0, 2, 2]", {"image": 2, "bbox": [0, 0, 2, 2]})
    (0.0, 0.0)
    """
    image, box = parse_image_box(prediction)
    image_ok = float(image is not None and image == int(answer["image"]))
    if not image_ok or box is None:
        return image_ok, 0.0
    return image_ok, _threshold(box_iou(box, answer["bbox"]), iou_threshold)


def score_image_bbox(
    prediction: str, answer: dict[str, Any], iou_threshold: float | None = None
) -> float:
    """Accuracy of an (image, box) answer: the object-level reward (0 when the image is wrong).

    >>> score_image_bbox("image 2: [0, 0, 2, 2]", {"image": 2, "bbox": [1, 1, 3, 3]}, 0.5)
    0.0
    """
    return image_bbox_rewards(prediction, answer, iou_threshold)[1]


def score_answer(
    answer_type: str,
    prediction: str | None,
    answer: Any,
    choices: Sequence[str] | None = None,
    *,
    number_tolerance: float = 0.0,
    iou_threshold: float | None = None,
) -> float:
    """Dispatch on the sample's answer type; a missing prediction scores 0.

    >>> score_answer("choice", "A", "A", ["x", "y"])
    1.0
    >>> score_answer("number", None, 3)
    0.0
    """
    if prediction is None:
        return 0.0
    if answer_type == "choice":
        return score_choice(prediction, str(answer), choices)
    if answer_type == "number":
        return score_number(prediction, answer, number_tolerance)
    if answer_type == "text":
        return score_text(prediction, answer)
    if answer_type == "image_index":
        return score_image_index(prediction, answer)
    if answer_type == "bbox":
        return score_bbox(prediction, answer, iou_threshold)
    if answer_type == "image_bbox":
        return score_image_bbox(prediction, answer, iou_threshold)
    raise ValueError(
        f"unknown answer_type {answer_type!r}; known: choice, number, text, image_index, bbox, image_bbox"
    )


CORRECT_AT = 0.5  # a continuous score (token F1, IoU) counts as a correct answer from here


def is_correct(score: float) -> bool:
    """A score counts as correct at >= 0.5 (IoU@0.5 for boxes, F1 >= 0.5 for text)."""
    return score >= CORRECT_AT
