"""BLINK (Fu et al., 2024): 14 perception sub-tasks as multiple choice, 1-4 images per item.

Native layout (the Hugging Face release `BLINK-Benchmark/BLINK`): one folder per sub-task
holding `val-*.parquet` (and `test-*.parquet`, whose answers are hidden), columns `idx`,
`question`, `sub_task`, `image_1`..`image_4` (null when unused), `choices`, `answer` ("(A)"),
`prompt` (the published instruction, with the options). Metric: letter accuracy per
sub-task; the overall score is the mean over sub-tasks.
"""

from __future__ import annotations

from pathlib import Path

from miva.data.benchmarks.base import Converted, convert_items, image_bytes, letter_options, require
from miva.data.benchmarks.choice import ChoiceBenchmark, answer_letter
from miva.data.benchmarks.parquet_util import find_parquet, iter_rows
from miva.data.schema import Sample

IMAGE_COLUMNS = ("image_1", "image_2", "image_3", "image_4")


class Blink(ChoiceBenchmark):
    name = "blink"
    title = "BLINK (val): 14 perception sub-tasks, letter accuracy"
    expects = (
        "<folder>/<Sub_Task>/val-*.parquet as in the HF release BLINK-Benchmark/BLINK; columns "
        "idx, question, sub_task, image_1..image_4 (null if unused), choices, answer '(A)', prompt"
    )
    overall = "macro"

    def convert(self, folder: Path, limit: int | None = None) -> Converted:
        files = find_parquet(folder, "**/val-*.parquet", "BLINK's <Sub_Task>/val-*.parquet files")
        columns = ["idx", "question", "choices", "answer", "image_1"]
        return convert_items(
            ((path, i, row) for path in files for i, row in iter_rows(path, columns)),
            lambda path, _, row: self._sample(row, path),
            lambda path, i, row: f"{path.relative_to(folder)}#{row.get('idx', i)}",
            limit,
        )

    def _sample(self, row: dict, path: Path) -> Sample:
        require(row, ["idx", "question", "choices", "answer"])
        images = [
            image_bytes(row[c], f"{c} of {row['idx']}")
            for c in IMAGE_COLUMNS
            if row.get(c) is not None
        ]
        if not images:
            raise ValueError("no image in image_1..image_4")
        choices = [str(c) for c in row["choices"]]
        if len(choices) < 2:
            raise ValueError(f"needs at least two choices, got {choices}")
        letter = answer_letter(row["answer"], len(choices))
        task = str(row.get("sub_task") or path.parent.name)
        prompt = row.get("prompt") or (
            f"{row['question']}\nSelect from the following choices.\n{letter_options(choices)}"
        )
        return self.choice_sample(
            str(row["idx"]),
            task=task,
            images=images,
            question=str(prompt),
            answer=letter,
            choices=choices,
        )
