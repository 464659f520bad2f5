"""MuirBench (Wang et al., 2024): 2,600 multi-image multiple-choice questions, 12 tasks.

Native layout (the Hugging Face release `MUIRBENCH/MUIRBENCH`): `data/test-*.parquet` with
columns `idx`, `task`, `image_relation`, `image_type`, `question` (with `<image>`
placeholders), `options` (list), `answer` (letter), `image_list` (list of images).
Metric: accuracy over all items (and per task).
"""

from __future__ import annotations

from pathlib import Path

from miva.data.benchmarks.base import Converted, convert_items, image_bytes, letter_options, require
from miva.data.benchmarks.choice import LETTER_INSTRUCTION, ChoiceBenchmark, answer_letter
from miva.data.benchmarks.parquet_util import find_parquet, iter_rows
from miva.data.schema import Sample

COLUMNS = ["idx", "task", "question", "options", "answer", "image_list"]


class MuirBench(ChoiceBenchmark):
    name = "muirbench"
    title = "MuirBench: 12 multi-image tasks, accuracy"
    expects = (
        "<folder>/data/test-*.parquet (or *.parquet) as in the HF release MUIRBENCH/MUIRBENCH; "
        "columns idx, task, image_relation, image_type, question, options[], answer (letter), image_list[]"
    )
    overall = "micro"

    def convert(self, folder: Path, limit: int | None = None) -> Converted:
        try:
            files = find_parquet(folder, "**/test-*.parquet", "MuirBench test-*.parquet")
        except Exception:
            files = find_parquet(folder, "**/*.parquet", "MuirBench parquet files")
        return convert_items(
            ((path, i, row) for path in files for i, row in iter_rows(path, COLUMNS)),
            lambda _, __, row: self._sample(row),
            lambda path, i, row: f"{path.name}#{row.get('idx', i)}",
            limit,
        )

    def _sample(self, row: dict) -> Sample:
        require(row, COLUMNS)
        images = [image_bytes(img, f"image {k + 1}") for k, img in enumerate(row["image_list"])]
        if not images:
            raise ValueError("image_list is empty")
        choices = [str(o) for o in row["options"]]
        letter = answer_letter(row["answer"], len(choices))
        question = f"{row['question']}\n{letter_options(choices)}\n{LETTER_INSTRUCTION}"
        return self.choice_sample(
            str(row["idx"]),
            task=str(row["task"]),
            images=images,
            question=question,
            answer=letter,
            choices=choices,
            image_relation=row.get("image_relation"),
            image_type=row.get("image_type"),
        )
