"""Chat and tool format: prompt text, tags, and parsing of what the model writes.

The model thinks in `<think>…</think>`, calls one tool per turn as
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` and ends with
`<answer>…</answer>` (Qwen2.5 chat markup around every turn, see `assembly.py`).

Parsing is tolerant: whitespace, code fences, single quotes, trailing commas, Python
literals (True/None), arguments given as a JSON string and missing closing braces are
repaired; anything else is a `CallError` whose message goes back to the model.

`parse_answer(text, sample, family, frames)` turns the text of an answer into the typed
value of the sample's `answer_type`, with boxes converted from the model's coordinate
convention to dataset pixels (`None` when it cannot be read). `format_model_answer`
is its inverse (gold answers for SFT, scripted policies).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from miva.agent import coords
from miva.agent.coords import Frame
from miva.data.schema import CHOICE_LETTERS, format_answer
from miva.scoring import image_number

THINK = ("<think>", "</think>")
TOOL_CALL = ("<tool_call>", "</tool_call>")
TOOL_RESPONSE = ("<tool_response>", "</tool_response>")
ANSWER = ("<answer>", "</answer>")
# A turn ends when one of these closes (generation stops on them).
STOP_STRINGS = (TOOL_CALL[1], ANSWER[1])

IMAGE_PLACEHOLDER = "<image>"  # how an image shows in a prompt's display text (`Prompt.text`)


@dataclass(frozen=True)
class ImageSlot:
    """Where the next image goes in a prompt. Images are placed by these slots in a list of
    parts, never by finding a string in text: a literal `<image>` in a question, an option
    or a tool's output stays text."""


IMAGE = ImageSlot()


@dataclass(frozen=True)
class Prompt:
    """Prompt text with image slots: `parts` alternate text and `IMAGE`, in order."""

    parts: tuple[str | ImageSlot, ...]

    @property
    def n_images(self) -> int:
        return sum(isinstance(p, ImageSlot) for p in self.parts)

    @property
    def text(self) -> str:
        """Display text, each image shown as IMAGE_PLACEHOLDER (untrusted text in it was
        escaped, so the placeholders are exactly the images)."""
        return "".join(IMAGE_PLACEHOLDER if isinstance(p, ImageSlot) else p for p in self.parts)


# Markup a tokenizer may turn into control tokens: Qwen special tokens (`<|...|>`), the
# tool and answer tags, and the image placeholder.
_MARKUP = re.compile(r"<(\|[^|<>\s]{1,64}\|>|/?(?:tool_call|tool_response|think|answer|image)>)")


def escape_untrusted(text: str) -> str:
    """Text from outside (questions, options, tool output, search snippets, names a model
    invented) keeps its words but loses its markup: `<|im_end|>` -> `<| im_end |>`,
    `</tool_response>` -> `< /tool_response>`, `<image>` -> `< image>`; each tokenises as
    plain text, so no untrusted string can end a turn, open a tool call or add an image.

    >>> escape_untrusted("a <image> b <|vision_start|> </answer>")
    'a < image> b <| vision_start |> < /answer>'
    """

    def spaced(m: re.Match) -> str:
        body = m.group(1)
        if body.startswith("|"):
            return "<| " + body[1:-2] + " |>"
        return "< " + body

    return _MARKUP.sub(spaced, text)


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class CallError:
    message: str
    raw: str


def coordinate_rule(family: str) -> str:
    if family == "qwen2-vl":
        return "Boxes are [x1, y1, x2, y2] on a 0-1000 grid of the image (0,0 top-left)."
    return "Boxes are [x1, y1, x2, y2] in pixels of the image as you see it (0,0 top-left)."


ANSWER_FORMATS = {
    "choice": "the option letter, e.g. <answer>B</answer>",
    "number": "a number, e.g. <answer>3</answer>",
    "text": "a short phrase, e.g. <answer>red circle</answer>",
    "image_index": "the image number, e.g. <answer>2</answer>",
    "bbox": "a box, e.g. <answer>[10, 20, 50, 60]</answer>",
    "image_bbox": "an image number and a box, e.g. <answer>image 2: [10, 20, 50, 60]</answer>",
}


def compact_tool_line(schema: dict[str, Any]) -> str:
    """`zoom(image, bbox)`: the call signature alone."""
    return f"{schema['name']}({', '.join(schema.get('parameters', {}).get('properties', {}))})"


def system_prompt(
    tool_schemas: Sequence[dict[str, Any]],
    answer_type: str | None,
    family: str,
    style: str = "full",
) -> str:
    """The system turn: role, tools, call and answer format.

    `style="full"` lists each tool's JSON schema (what instruction-tuned Qwen models know);
    `"compact"` keeps only signatures and formats, for tiny models on CPU where the full
    text would be most of every sequence.
    """
    answer = (
        f"The answer is {ANSWER_FORMATS[answer_type]}." if answer_type in ANSWER_FORMATS else ""
    )
    if style == "compact":
        # the box convention only where boxes appear: in tool calls or in the answer
        boxes = bool(tool_schemas) or answer_type in ("bbox", "image_bbox")
        lines = [coordinate_rule(family)] if boxes else []
        if tool_schemas:
            lines.append("Tools: " + ", ".join(compact_tool_line(s) for s in tool_schemas) + ".")
        lines.append(answer or "Answer inside <answer></answer>.")
        return "\n".join(lines)
    lines = [
        "You answer questions about several images. Images are numbered from 1 in the order "
        "they appear; images returned by tools get the next numbers.",
        coordinate_rule(family),
    ]
    if tool_schemas:
        lines.append("You may call one tool per turn. Tools:")
        lines.append("<tools>")
        lines.extend(json.dumps(s, sort_keys=True) for s in tool_schemas)
        lines.append("</tools>")
        lines.append(
            'Call a tool as <tool_call>{"name": NAME, "arguments": {...}}</tool_call> and wait '
            "for its <tool_response>."
        )
    lines.append(
        "Think inside <think></think> if useful, then give the final answer inside <answer></answer>."
    )
    if answer:
        lines.append(answer)
    return "\n".join(lines)


def user_prompt(
    question: str,
    n_images: int,
    choices: Sequence[str] | None = None,
    options_in_question: bool = False,
    segments: Sequence[str] | None = None,
) -> Prompt:
    """'Image 1: <image> Image 2: <image> ... question (options)', question and options escaped.

    The options are not appended when `options_in_question` (a benchmark's published prompt
    already lists them: `sample.meta["options_in_question"]`) or the question visibly does.
    `segments` (a benchmark that interleaves images with its text, e.g. MuirBench's
    `<image>` markers, `sample.meta["question_segments"]`) is the question cut where its
    images go: image k sits between segments k-1 and k; images beyond the slots follow the
    text, slots beyond the images stay as the text "[image]".
    """
    if segments:
        parts: list[str | ImageSlot] = []
        k = 0
        for i, seg in enumerate(segments):
            if i > 0:
                if k < n_images:
                    k += 1
                    parts += [f"Image {k}: ", IMAGE]
                else:
                    parts.append("[image]")
            parts.append(escape_untrusted(str(seg)))
        parts += [x for j in range(k + 1, n_images + 1) for x in (f"\nImage {j}: ", IMAGE)]
        question_text = "".join(p for p in parts if isinstance(p, str))
    else:
        parts = [x for k in range(1, n_images + 1) for x in (f"Image {k}: ", IMAGE, "\n")]
        if parts:
            parts.pop()
        parts.append("\n" + escape_untrusted(question.strip()))
        question_text = question
    listed = options_in_question or re.search(r"\(A\)|\bA[.)]\s", question_text)
    if choices and not listed:
        parts.append(
            "\n"
            + "\n".join(
                f"{CHOICE_LETTERS[i]}. {escape_untrusted(str(c))}" for i, c in enumerate(choices)
            )
        )
    return Prompt(tuple(parts))


def tool_response_text(
    body: str, first_image_number: int | None = None, n_images: int = 0
) -> Prompt:
    """A tool turn: the escaped result text; image tools announce the numbers of their images."""
    parts: list[str | ImageSlot] = [TOOL_RESPONSE[0] + escape_untrusted(body)]
    if first_image_number is not None:
        for i in range(n_images):
            parts += [f"\nImage {first_image_number + i}: ", IMAGE]
    parts.append(TOOL_RESPONSE[1])
    return Prompt(tuple(parts))


# ----------------------------------------------------------------------------- parsing


def first_stop(text: str) -> int | None:
    """End index (exclusive) of the first closing tag that ends a turn, or None."""
    ends = [i + len(s) for s in STOP_STRINGS if (i := text.find(s)) >= 0]
    return min(ends) if ends else None


def extract_answer(text: str) -> str | None:
    """Text inside the first <answer>…</answer> (stripped), None when there is none."""
    m = re.search(r"<answer>(.*?)</answer>", text, flags=re.S)
    return m.group(1).strip() if m else None


def strip_think(text: str) -> str:
    return re.sub(r"<think>.*?</think>", "", text, flags=re.S)


def has_tool_call(text: str) -> bool:
    return TOOL_CALL[0] in strip_think(text)


def parse_tool_call(text: str) -> ParsedCall | CallError | None:
    """The first tool call of a turn: ParsedCall, CallError (malformed) or None (no call)."""
    body = strip_think(text)
    start = body.find(TOOL_CALL[0])
    if start < 0:
        return None
    rest = body[start + len(TOOL_CALL[0]) :]
    end = rest.find(TOOL_CALL[1])
    raw = (rest if end < 0 else rest[:end]).strip()
    obj = _loads_lenient(raw)
    if obj is None:
        return CallError(
            'the tool call is not valid JSON; write <tool_call>{"name": "zoom", "arguments": {...}}</tool_call>',
            raw,
        )
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return CallError('the tool call needs a string "name" and an "arguments" object', raw)
    args = obj.get("arguments", obj.get("parameters", obj.get("args", {})))
    if isinstance(args, str):
        parsed = _loads_lenient(args)
        args = parsed if parsed is not None else args
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return CallError('"arguments" must be a JSON object', raw)
    return ParsedCall(obj["name"].strip(), args)


def _loads_lenient(raw: str) -> Any:
    s = raw.strip()
    s = re.sub(r"^```(?:json)?\s*|\s*```$", "", s)
    for attempt in range(4):
        try:
            return json.loads(s)
        except (json.JSONDecodeError, ValueError):
            pass
        if attempt == 0:
            s = re.sub(r",\s*([}\]])", r"\1", s)  # trailing commas
            s = re.sub(r"\bTrue\b", "true", s)
            s = re.sub(r"\bFalse\b", "false", s)
            s = re.sub(r"\bNone\b", "null", s)
        elif attempt == 1 and '"' not in s:
            s = s.replace("'", '"')
        elif attempt == 2:
            s = _close_brackets(s)
    return None


def _close_brackets(s: str) -> str:
    stack: list[str] = []
    in_str = esc = False
    for ch in s:
        if in_str:
            esc = (ch == "\\") and not esc
            if ch == '"' and not esc:
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
    return s + ('"' if in_str else "") + "".join(reversed(stack))


# ----------------------------------------------------------------------------- answers

_NUM = r"-?\d+(?:\.\d+)?"


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(_NUM, text)]


def bbox_image(sample) -> int:
    """Which image a `bbox` answer refers to: the first evidence image, else image 1."""
    return int(sample.evidence[0].image) if sample.evidence else 1


def parse_answer(text: str | None, sample, family: str, frames: Sequence[Frame]) -> Any:
    """Typed answer of `sample.answer_type` from the text inside <answer>, or None.

    `frames[k-1]` is the Frame of original image k (model coordinates -> dataset pixels).
    Examples (Qwen2.5-VL, image shown 4x smaller than stored): bbox "[28, 28, 56, 56]" ->
    [112.0, 112.0, 224.0, 224.0]; image_bbox "image 2: [0, 0, 28, 28]" -> {"image": 2,
    "bbox": [0.0, 0.0, 112.0, 112.0]}; choice "(B) blue" -> "B"; image_index "Image 3" -> 3.
    """
    if text is None:
        return None
    t = text.strip()
    kind = sample.answer_type
    if kind == "text":
        return t or None
    if kind == "choice":
        n = len(sample.choices or []) or len(CHOICE_LETTERS)
        letters = CHOICE_LETTERS[:n]
        m = re.match(rf"^\(?([{letters}])\)?(?:[.):\s]|$)", t)
        if m:
            return m.group(1)
        norm = t.lower().strip(" .")
        for i, c in enumerate(sample.choices or []):
            if norm == str(c).lower().strip(" ."):
                return CHOICE_LETTERS[i]
        return None
    if kind == "number":
        nums = _numbers(t)
        if not nums:
            return None
        v = nums[0]
        return int(v) if v.is_integer() else v
    if kind == "image_index":
        m = re.search(r"\d+", t)
        return image_number(m.group(0)) if m else None
    if kind == "bbox":
        nums = _numbers(t)
        if len(nums) < 4:
            return None
        return _box_to_dataset(nums[-4:], bbox_image(sample), family, frames)
    if kind == "image_bbox":
        m = re.search(r"image\s*(\d+)", t, flags=re.I)
        nums = _numbers(t)
        if m:
            k = image_number(m.group(1))
            nums = _numbers(t[m.end() :])
        elif len(nums) >= 5:
            k, nums = image_number(nums[0]), nums[1:]
        else:
            return None
        if k is None or len(nums) < 4:
            return None
        box = _box_to_dataset(nums[:4], k, family, frames)
        return None if box is None else {"image": k, "bbox": box}
    raise ValueError(f"unknown answer_type {kind!r}")


def _box_to_dataset(nums: Sequence[float], k: int, family: str, frames: Sequence[Frame]):
    if not 1 <= k <= len(frames):
        return None
    return coords.from_model(nums, frames[k - 1], family)


def format_model_answer(sample, family: str, frames: Sequence[Frame]) -> str:
    """The sample's gold answer as the model should write it (boxes in model coordinates)."""
    kind, ans = sample.answer_type, sample.answer
    if kind == "bbox":
        return format_answer("bbox", coords.to_model(ans, frames[bbox_image(sample) - 1], family))
    if kind == "image_bbox":
        k = int(ans["image"])
        box = coords.to_model(ans["bbox"], frames[k - 1], family)
        return format_answer("image_bbox", {"image": k, "bbox": box})
    return format_answer(kind, ans)
