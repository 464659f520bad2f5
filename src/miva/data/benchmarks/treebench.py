"""TreeBench (Wang et al., 2025, "Traceable Evidence Enhanced Visual Grounded Reasoning"):
405 multiple-choice questions on dense SA-1B scenes in 10 categories (5 perception, 5
reasoning), each with the boxes of the target instances the answer rests on. A model is
scored on the letter (accuracy) and on the boxes it gives as evidence (mean IoU).

Native layout (the Hugging Face release `HaochenWang/TreeBench`): one tab-separated file
`TreeBench.tsv` with columns `index`, `image` (base64 JPEG), `question`,
`multi-choice options` (lines "A. ...", "B. ..."), `answer` (the letter), `category`
("Perception/Attributes", ..., "Reasoning/Comparison") and `target_instances` (a Python
list literal of pixel [x1, y1, x2, y2] boxes of the original image).
Confirmed against github.com/Haochen-Wang409/TreeVGR at 4823ad8 (inference_treebench.py:
`load_dataset("HaochenWang/TreeBench", data_files="TreeBench.tsv", delimiter="\\t")`, the
prompt `question + " Options:\\n" + multi-choice options`, `ast.literal_eval` of
`target_instances`, exact-letter accuracy per category and overall, and the IoU rule below).

Metrics (as the release's script computes them): `accuracy` = exact option letter, per
category and over all items; `mean_iou` = per item, for each target box the best IoU over
the predicted boxes, averaged over the item's targets (0 when no box was given), then
averaged over items. MIVA's agent writes its answer as the letter followed by the boxes,
`B [x1, y1, x2, y2] ...` in model coordinates; `prediction_from_model` converts the boxes to
dataset pixels (the release reads `<box>[...]</box>` anywhere in the reply; MIVA reads the
boxes of the final answer, with or without `<box>` tags).
"""

from __future__ import annotations

import ast
import csv
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from miva.data.benchmarks.base import (
    AnswerReader,
    Benchmark,
    Converted,
    ItemScore,
    convert_items,
    image_bytes,
    image_size,
    require,
    task_slug,
)
from miva.data.benchmarks.choice import split_inline_options
from miva.data.schema import CHOICE_LETTERS, Evidence, Sample
from miva.errors import DataError
from miva.scoring import box_iou, mean, parse_box, per_group_means

FILE = "TreeBench.tsv"
COLUMNS = ["index", "image", "question", "multi-choice options", "answer", "category"]
INSTRUCTION = (
    "Answer with the option's letter, then the box of every object your answer rests on as "
    "[x1, y1, x2, y2], e.g. B [120, 40, 210, 96]."
)
# a leading option letter, not an article or pronoun ("A cat", "I think"): the letter is
# not followed by a space and a word, as in the MMSI-Bench/VLMEvalKit extraction
_LETTER = re.compile(r"^\W*\(?([A-J])\b(?!\s+[A-Za-z])")
_BRACKET = re.compile(r"\[([^\[\]]*)\]")


def target_boxes(raw: Any) -> list[list[float]]:
    """`target_instances` (a list literal, or a list) -> checked pixel xyxy boxes."""
    value = ast.literal_eval(raw) if isinstance(raw, str) else raw
    if not isinstance(value, list | tuple):
        raise ValueError(f"target_instances {raw!r} is not a list of boxes")
    boxes = []
    for box in value:
        if not isinstance(box, list | tuple) or len(box) != 4:
            raise ValueError(f"target box {box!r} is not [x1, y1, x2, y2]")
        x1, y1, x2, y2 = (float(v) for v in box)
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"target box {list(box)} is empty or inverted")
        boxes.append([x1, y1, x2, y2])
    return boxes


def parse_prediction(text: str | None) -> tuple[str | None, list[tuple[float, ...]]]:
    """'B [1, 2, 3, 4] <box>[5, 6, 7, 8]</box>' -> ('B', [(1, 2, 3, 4), (5, 6, 7, 8)]).

    >>> parse_prediction("(C) because [10, 10, 20, 30]")
    ('C', [(10.0, 10.0, 20.0, 30.0)])
    >>> parse_prediction("I cannot tell")
    (None, [])
    """
    if not text:
        return None, []
    match = _LETTER.match(text)
    boxes = [box for inner in _BRACKET.findall(text) if (box := parse_box(inner)) is not None]
    return (match.group(1).upper() if match else None), boxes


def mean_best_iou(
    predicted: Sequence[Sequence[float]], targets: Sequence[Sequence[float]]
) -> float:
    """For each target the best IoU over the predicted boxes, averaged over targets; 0 with
    no targets or no predictions (the release's rule).

    Targets [0,0,2,2] and [10,10,12,12], one prediction [1,1,3,3]: best IoUs 1/7 and 0 ->
    mean 1/14.

    >>> round(mean_best_iou([[1, 1, 3, 3]], [[0, 0, 2, 2], [10, 10, 12, 12]]), 4)
    0.0714
    """
    if not targets:
        return 0.0
    return mean(max((box_iou(t, p) for p in predicted), default=0.0) for t in targets)


def format_prediction(letter: str | None, boxes: Sequence[Sequence[float]]) -> str:
    parts = [letter or "?"] + [
        "[" + ", ".join(f"{round(float(v), 2):g}" for v in box) + "]" for box in boxes
    ]
    return " ".join(parts)


class TreeBench(Benchmark):
    name = "treebench"
    title = "TreeBench: traceable visual evidence, letter accuracy and mean IoU of the boxes"
    expects = (
        f"<folder>/{FILE} as in the HF release HaochenWang/TreeBench; tab-separated columns "
        "index, image (base64), question, multi-choice options, answer, category, "
        "target_instances ([[x1,y1,x2,y2], ...] pixels)"
    )
    metric = "accuracy"

    def convert(self, folder: Path, limit: int | None = None) -> Converted:
        path = folder / FILE
        rows = _read_tsv(path)
        return convert_items(
            enumerate(rows),
            lambda _, row: self._sample(row),
            lambda i, row: f"{FILE}#{row.get('index', i) if isinstance(row, dict) else i}",
            limit,
        )

    def _sample(self, row: dict) -> Sample:
        require(row, COLUMNS)
        image = image_bytes(row["image"], "image")
        options_text = str(row["multi-choice options"])
        choices = split_inline_options(options_text)
        if not choices:
            raise ValueError("no options 'A. ...' in multi-choice options")
        letter = str(row["answer"]).strip().strip("()").rstrip(".").upper()
        if letter not in CHOICE_LETTERS[: len(choices)]:
            raise ValueError(f"answer {row['answer']!r} is not one of the option letters")
        boxes = target_boxes(row.get("target_instances") or "[]")
        width, height = image_size(image)
        for box in boxes:
            if box[0] < 0 or box[1] < 0 or box[2] > width + 1 or box[3] > height + 1:
                raise ValueError(f"target box {box} lies outside the {width}x{height} image")
        category = str(row["category"])
        return self.test_sample(
            str(row["index"]),
            {"category": category, "targets": boxes, "options_in_question": True},
            task=task_slug(category),
            images=[image],
            question=f"{row['question']} Options:\n{options_text}\n{INSTRUCTION}",
            answer_type="choice",
            answer=letter,
            choices=choices,
            evidence=[Evidence(1, tuple(box)) for box in boxes],  # type: ignore[arg-type]
        )

    def prediction_from_model(
        self, text: str | None, sample: Sample, reader: AnswerReader
    ) -> str | None:
        """The letter and the boxes, boxes from model coordinates to dataset pixels (a box
        the reader cannot place is dropped)."""
        letter, boxes = parse_prediction(text)
        if letter is None and not boxes:
            return None
        pixels = [p for b in boxes if (p := reader.box(b, 1)) is not None]
        return format_prediction(letter, pixels)

    def score_item(self, sample: Sample, prediction: Any) -> ItemScore:
        letter, boxes = parse_prediction(None if prediction is None else str(prediction))
        correct = letter is not None and letter == sample.answer
        iou = mean_best_iou(boxes, sample.meta.get("targets") or [])
        return ItemScore(
            sample.id,
            sample.task,
            float(correct),
            correct,
            letter is not None,
            {"iou": iou, "predicted_boxes": float(len(boxes))},
        )

    def aggregate(
        self,
        samples: Sequence[Sample],
        items: Sequence[ItemScore],
        predictions: Mapping[str, Any],
    ) -> dict[str, float]:
        tasks = [it.task for it in items]
        acc = per_group_means(tasks, [it.score for it in items])
        ious = per_group_means(tasks, [it.details["iou"] for it in items])
        out: dict[str, float] = {}
        for task in acc:
            out[f"{task}/accuracy"] = acc[task]
            out[f"{task}/mean_iou"] = ious[task]
        families = [str(s.meta.get("category", "")).split("/")[0].lower() for s in samples]
        for family, value in per_group_means(families, [it.score for it in items]).items():
            if family:
                out[f"overall/{task_slug(family)}_accuracy"] = value
        out["overall/accuracy"] = mean(it.score for it in items)
        out["overall/mean_iou"] = mean(it.details["iou"] for it in items)
        out["overall/invalid_rate"] = mean(0.0 if it.valid else 1.0 for it in items)
        out["overall/items"] = float(len(items))
        return out


def _read_tsv(path: Path) -> list[dict[str, Any]]:
    """Rows of the release's TSV (pandas-written: quoted fields may hold newlines)."""
    if not path.is_file():
        raise DataError(f"{path}: missing; expected TreeBench's {FILE}")
    csv.field_size_limit(sys.maxsize)  # a base64 image is one field of several MB
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; found {reader.fieldnames}")
        return list(reader)
