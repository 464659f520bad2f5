"""Answer scorers: ONE implementation of each accuracy metric, shared by rewards and evaluation.

Plain functions of strings and typed answers (stdlib only). Conventions:
- A prediction is the text inside ``<answer>...</answer>``; `extract_answer` pulls it out of a
  whole response (the think block is ignored; zero or several answer tags give ``None``).
- Image numbers are 1-based; boxes are ``[x1, y1, x2, y2]`` in the dataset's pixel
  convention (the agent converts model-convention boxes before scoring).
- Every scorer returns a float in ``[0, 1]``; an unparseable prediction scores 0.

`score_answer(answer_type, prediction, answer, ...)` dispatches on the sample's answer type.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

CHOICE_LETTERS = "ABCDEFGHIJ"
MAX_PREDICTION_CHARS = 2000  # longer predictions are cut before parsing (no regex blow-ups)

_THINK = re.compile(r"<think>.*?(</think>|$)", re.S)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


# ----------------------------------------------------------------------------- parsing


def extract_answer(response: str) -> str | None:
    """The text of the single ``<answer>`` tag outside the think block, stripped.

    >>> extract_answer("<think>maybe 3</think><answer> 2 </answer>")
    '2'
    >>> extract_answer("<think><answer>1</answer></think>no tag here") is None
    True
    >>> extract_answer("<answer>1</answer><answer>2</answer>") is None  # hedging
    True
    """
    visible = _THINK.sub("", response)
    found = _ANSWER.findall(visible)
    if len(found) != 1:
        return None
    return found[0].strip()


def parse_number(text: str) -> float | None:
    """The first finite number in `text`, or None.

    >>> parse_number("about 12.5 apples")
    12.5
    >>> parse_number("1e999") is None  # overflows to inf
    True
    >>> parse_number("none") is None
    True
    """
    match = _NUMBER.search(text[:MAX_PREDICTION_CHARS].replace(",", ""))
    if match is None:
        return None
    value = float(match.group())
    return value if math.isfinite(value) else None


def parse_image_index(text: str) -> int | None:
    """A 1-based image number written as ``2``, ``image 2`` or ``Image 2:``.

    >>> parse_image_index("Image 3")
    3
    >>> parse_image_index("the second") is None
    True
    """
    match = re.search(r"\d{1,6}", text[:MAX_PREDICTION_CHARS])
    return int(match.group()) if match else None


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """The first four numbers of `text` as a box; None when fewer than four or inverted/empty.

    >>> parse_box("[10, 20, 30, 40]")
    (10.0, 20.0, 30.0, 40.0)
    >>> parse_box("[30, 40, 10, 20]") is None  # inverted: x2 < x1
    True
    """
    nums = _NUMBER.findall(text[:MAX_PREDICTION_CHARS])
    if len(nums) < 4:
        return None
    box = tuple(float(v) for v in nums[:4])
    if not all(math.isfinite(v) for v in box):
        return None
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        return None
    return box  # type: ignore[return-value]


def parse_image_box(text: str) -> tuple[int | None, tuple[float, float, float, float] | None]:
    """``image 2: [x1, y1, x2, y2]`` -> (2, box). Either part may be None.

    >>> parse_image_box("image 2: [1, 2, 3, 4]")
    (2, (1.0, 2.0, 3.0, 4.0))
    """
    text = text[:MAX_PREDICTION_CHARS]
    head, bracket, tail = text.partition("[")
    image = parse_image_index(head)
    box = parse_box(bracket + tail) if bracket else None
    if image is None and box is None:
        # no bracket: "2 10 20 30 40"
        nums = _NUMBER.findall(text)
        if len(nums) >= 5:
            image = parse_image_index(nums[0])
            box = parse_box(" ".join(nums[1:5]))
    return image, box


# ----------------------------------------------------------------------------- text


def normalize_text(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation and articles, squeeze spaces.

    >>> normalize_text("The  Red-Car!")
    'redcar'
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _references(answer: Any) -> list[str]:
    if isinstance(answer, str):
        return [answer]
    if isinstance(answer, Sequence):
        return [str(a) for a in answer]
    return [str(answer)]


def exact_match(prediction: str, answer: str | Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised reference (max over references).

    >>> exact_match("the Eiffel Tower.", ["Eiffel tower", "tour Eiffel"])
    1.0
    """
    pred = normalize_text(prediction)
    return max((1.0 if pred == normalize_text(r) else 0.0) for r in _references(answer))


def token_f1(prediction: str, answer: str | Sequence[str]) -> float:
    """SQuAD token F1, max over references.

    pred "red big car" vs ref "big red truck": common = {red, big} -> P = 2/3, R = 2/3, F1 = 2/3.

    >>> round(token_f1("red big car", "big red truck"), 4)
    0.6667
    >>> token_f1("", "x")
    0.0
    """
    pred_tokens = normalize_text(prediction).split()
    best = 0.0
    for ref in _references(answer):
        ref_tokens = normalize_text(ref).split()
        if not pred_tokens or not ref_tokens:
            best = max(best, float(pred_tokens == ref_tokens))
            continue
        common = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
        if common == 0:
            continue
        precision, recall = common / len(pred_tokens), common / len(ref_tokens)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


# ----------------------------------------------------------------------------- per answer type


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


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two xyxy boxes (0 for empty or inverted boxes).

    Boxes [0,0,2,2] and [1,1,3,3]: intersection 1, union 4 + 4 - 1 = 7 -> 1/7.

    >>> round(box_iou([0, 0, 2, 2], [1, 1, 3, 3]), 4)
    0.1429
    >>> box_iou([2, 2, 0, 0], [0, 0, 2, 2])
    0.0
    """
    ax1, ay1, ax2, ay2 = (float(v) for v in a)
    bx1, by1, bx2, by2 = (float(v) for v in b)
    area_a = max(ax2 - ax1, 0.0) * max(ay2 - ay1, 0.0)
    area_b = max(bx2 - bx1, 0.0) * max(by2 - by1, 0.0)
    if area_a <= 0 or area_b <= 0:
        return 0.0
    iw = max(min(ax2, bx2) - max(ax1, bx1), 0.0)
    ih = max(min(ay2, by2) - max(ay1, by1), 0.0)
    inter = iw * ih
    union = area_a + area_b - inter
    if not math.isfinite(union) or union <= 0:
        return 0.0
    return inter / union


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
