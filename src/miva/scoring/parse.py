"""Reading a prediction: the answer tag, numbers, image numbers and boxes in model text.

Pure functions of strings (stdlib only). A prediction longer than `MAX_PREDICTION_CHARS`
is cut before any regular expression runs, so hostile text cannot blow up a parser.
Image numbers are 1-based; a box is ``(x1, y1, x2, y2)`` with ``x2 > x1`` and ``y2 > y1``.
"""

from __future__ import annotations

import math
import re

MAX_PREDICTION_CHARS = 2000  # longer predictions are cut before parsing (no regex blow-ups)
MAX_IMAGE_DIGITS = 6  # a longer "image number" is no answer

_THINK = re.compile(r"<think>.*?(</think>|$)", re.S)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)
NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def scored_answer(response: str) -> str | None:
    """The text of the single ``<answer>`` tag outside the think block, stripped: what a
    reward scores. Zero or several answer tags give None (hedging earns nothing); the agent
    runtime's `miva.agent.format.extract_answer` instead reads the first tag of one turn.

    >>> scored_answer("<think>maybe 3</think><answer> 2 </answer>")
    '2'
    >>> scored_answer("<think><answer>1</answer></think>no tag here") is None
    True
    >>> scored_answer("<answer>1</answer><answer>2</answer>") is None  # hedging
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
    match = NUMBER.search(text[:MAX_PREDICTION_CHARS].replace(",", ""))
    if match is None:
        return None
    value = float(match.group())
    return value if math.isfinite(value) else None


def parse_image_index(text: str) -> int | None:
    """A 1-based image number written as ``2``, ``image 2`` or ``Image 2:``; a number of more
    than `MAX_IMAGE_DIGITS` digits is no image number (a wrong answer, not a huge int).

    >>> parse_image_index("Image 3")
    3
    >>> parse_image_index("the second") is None
    True
    >>> parse_image_index("image 1234567") is None
    True
    """
    match = re.search(r"\d+", text[:MAX_PREDICTION_CHARS])
    return image_number(match.group()) if match else None


def image_number(value: str | float) -> int | None:
    """A number as written (digits, a number token such as ``3.0`` / ``1e999``, or a parsed
    float) as an image number; None when it is not finite or longer than
    `MAX_IMAGE_DIGITS` digits, so a 5,000-digit or infinite "number" is a wrong answer.

    >>> image_number("2"), image_number("2.0"), image_number(2.0)
    (2, 2, 2)
    >>> image_number("1e999"), image_number("9" * 400), image_number(float("inf"))
    (None, None, None)
    """
    if isinstance(value, str) and value.isdecimal():
        return int(value) if len(value) <= MAX_IMAGE_DIGITS else None
    number = float(value)
    return int(number) if math.isfinite(number) and abs(number) < 10**MAX_IMAGE_DIGITS else None


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """The first four numbers of `text` as a box; None when fewer than four or inverted/empty.

    >>> parse_box("[10, 20, 30, 40]")
    (10.0, 20.0, 30.0, 40.0)
    >>> parse_box("[30, 40, 10, 20]") is None  # inverted: x2 < x1
    True
    """
    nums = NUMBER.findall(text[:MAX_PREDICTION_CHARS])
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
        nums = NUMBER.findall(text)
        if len(nums) >= 5:
            image = image_number(nums[0])
            box = parse_box(" ".join(nums[1:5]))
    return image, box
