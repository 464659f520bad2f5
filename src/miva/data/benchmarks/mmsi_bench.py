"""MMSI-Bench (Yang et al., 2025): 1,000 multi-image spatial-reasoning multiple-choice
questions (2-10 real-world images each) in 11 question types: six positional relationships
(camera/object/region pairs), two attributes (appearance, measurement), two motions (camera,
object) and multi-step reasoning (MSR).

Native layout (the Hugging Face release `RunsenXu/MMSI-Bench`): one file
`MMSI_Bench.parquet` with columns `id`, `images` (list of encoded image bytes, in order),
`question_type` (e.g. "Positional Relationship (Cam.–Obj.)", "MSR"), `question` (the text
with the options inline after "Options:" as "A: ..., B: ..., C: ..., D: ..."), `answer`
(the letter) and `thought` (the annotated reasoning, unused here); later snapshots add
`difficulty`, kept in `meta`.
Confirmed against github.com/InternRobotics/MMSI-Bench at 5de2f3d (README.md "Load
Dataset": the columns and `MMSI_Bench.parquet`; vlmeval/dataset/mmsi_bench.py: options live
inside `question`, accuracy overall and per category).

Metric: letter accuracy over all items (the official overall number) and per question
type; the task name is the question type as a slug (`motion_cam`, `msr`, ...).
"""

from __future__ import annotations

import re
from pathlib import Path

from miva.data.benchmarks.base import Converted, convert_items, image_bytes, require, task_slug
from miva.data.benchmarks.choice import LETTER_INSTRUCTION, ChoiceBenchmark, answer_letter
from miva.data.benchmarks.parquet_util import find_parquet, iter_rows
from miva.data.schema import CHOICE_LETTERS, Sample

COLUMNS = ["id", "images", "question_type", "question", "answer"]
_OPTION = re.compile(r"(?:^|[\s,;])([A-J])\s*:\s*")


def inline_options(question: str) -> list[str]:
    """The options written after 'Options:' as 'A: x, B: y, ...' (also one per line).

    >>> inline_options("Where is it? Options: A: left, B: right of the car, C: behind")
    ['left', 'right of the car', 'behind']
    """
    _, found, tail = question.rpartition("Options:")
    text = tail if found else question
    marks = list(_OPTION.finditer(text))
    letters = [m.group(1) for m in marks]
    if len(marks) < 2 or letters != list(CHOICE_LETTERS[: len(marks)]):
        return []
    ends = [m.start() for m in marks[1:]] + [len(text)]
    return [
        text[m.end() : end].strip().rstrip(",;").strip() for m, end in zip(marks, ends, strict=True)
    ]


class MmsiBench(ChoiceBenchmark):
    name = "mmsi-bench"
    title = "MMSI-Bench: multi-image spatial reasoning (11 question types), accuracy"
    expects = (
        "<folder>/MMSI_Bench.parquet as in the HF release RunsenXu/MMSI-Bench; columns id, "
        "images[] (bytes), question_type, question (options inline 'A: ..., B: ...'), answer"
    )
    overall = "micro"

    def convert(self, folder: Path, limit: int | None = None) -> Converted:
        files = find_parquet(folder, "**/MMSI_Bench*.parquet", "MMSI-Bench's MMSI_Bench.parquet")
        return convert_items(
            ((path, i, row) for path in files for i, row in iter_rows(path, COLUMNS)),
            lambda _, __, row: self._sample(row),
            lambda path, i, row: f"{path.name}#{row.get('id', i)}",
            limit,
        )

    def _sample(self, row: dict) -> Sample:
        require(row, COLUMNS)
        images = [image_bytes(img, f"image {k + 1}") for k, img in enumerate(row["images"])]
        if not images:
            raise ValueError("images is empty")
        question = str(row["question"])
        choices = inline_options(question)
        if not choices:
            raise ValueError("no options 'A: ..., B: ...' in question")
        letter = answer_letter(row["answer"], len(choices))
        meta = {"question_type": str(row["question_type"])}
        if row.get("difficulty") is not None:
            meta["difficulty"] = str(row["difficulty"])
        return self.choice_sample(
            str(row["id"]),
            task=task_slug(row["question_type"]),
            images=images,
            # the release's post-prompt without its backtick request (the agent answers in <answer>)
            question=f"{question}\n{LETTER_INSTRUCTION}",
            answer=letter,
            choices=choices,
            **meta,
        )
