"""MuirBench (Wang et al., 2024): 2,600 multi-image multiple-choice questions, 12 tasks.

Native layout (the Hugging Face release `MUIRBENCH/MUIRBENCH`): `data/test-*.parquet` with
columns `idx`, `task`, `image_relation`, `image_type`, `question`, `options` (list),
`answer` (letter), `image_list` (list of images).
Metric: accuracy over all items (and per task).

The question and options interleave text with images: each `<image>` marker stands for
the next image of `image_list`, in order. The adapter cuts the prompt text (question,
options, instruction) at the markers into `meta["question_segments"]`; the agent's prompt
puts image k between segments k-1 and k (`format.user_prompt`), so no marker is ever
matched in text at prompt time. `question` keeps a readable form with "[Image k]".
Markers and images that do not pair up are recorded in `meta["marker_mismatch"]`: extra
images follow the text, extra markers stay as the text "[image]".
"""

from __future__ import annotations

from pathlib import Path

from miva.data.benchmarks.base import Converted, convert_items, image_bytes, letter_options, require
from miva.data.benchmarks.choice import LETTER_INSTRUCTION, ChoiceBenchmark, answer_letter
from miva.data.benchmarks.parquet_util import find_parquet, iter_rows
from miva.data.schema import Sample

COLUMNS = ["idx", "task", "question", "options", "answer", "image_list"]
MARKER = "<image>"  # one per image of image_list, in order


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
        text = f"{row['question']}\n{letter_options(choices)}\n{LETTER_INSTRUCTION}"
        segments = text.split(MARKER)
        meta: dict = {
            "image_relation": row.get("image_relation"),
            "image_type": row.get("image_type"),
        }
        if len(segments) > 1:
            meta["question_segments"] = segments
            text = "".join(
                seg + (f"[Image {k}]" if k <= len(segments) - 1 else "")
                for k, seg in enumerate(segments, start=1)
            )
            if len(segments) - 1 != len(images):
                meta["marker_mismatch"] = {"markers": len(segments) - 1, "images": len(images)}
        return self.choice_sample(
            str(row["idx"]),
            task=str(row["task"]),
            images=images,
            question=text,
            answer=letter,
            choices=choices,
            **meta,
        )
