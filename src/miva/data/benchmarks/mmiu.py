"""MMIU (Meng et al., 2024): ~11.7k multi-image multiple-choice questions over 52 tasks.

Native layout (the Hugging Face release `MMIUBenchmark/MMIU`): a JSON list (`all.json`)
of {`task`, `options` (text with lines "A: ..."), `question`, `context`,
`input_image_path` [paths relative to the folder], `output` (letter)} and the extracted
image folders. Metric: accuracy per task, averaged over tasks.
"""

from __future__ import annotations

from pathlib import Path

from miva.data.benchmarks.base import (
    Converted,
    convert_items,
    expect_list,
    load_json,
    read_image_file,
    require,
)
from miva.data.benchmarks.choice import (
    LETTER_INSTRUCTION,
    ChoiceBenchmark,
    answer_letter,
    split_inline_options,
)
from miva.data.schema import Sample
from miva.errors import DataError

FIELDS = ["task", "options", "question", "input_image_path", "output"]


class Mmiu(ChoiceBenchmark):
    name = "mmiu"
    title = "MMIU: 52 multi-image tasks, accuracy averaged per task"
    expects = (
        "<folder>/all.json (or the only *.json) as in the HF release MMIUBenchmark/MMIU: list of "
        "{task, options, question, context, input_image_path[], output}; images at the listed "
        "paths relative to <folder>"
    )
    overall = "macro"

    def convert(self, folder: Path, limit: int | None = None) -> Converted:
        path = folder / "all.json"
        if not path.is_file():
            found = sorted(folder.glob("*.json"))
            if len(found) != 1:
                raise DataError(
                    f"{folder}: expected MMIU's all.json (or exactly one *.json), found "
                    f"{[p.name for p in found]}"
                )
            path = found[0]
        entries = expect_list(load_json(path), path, "MMIU items")
        return convert_items(
            enumerate(entries),
            lambda i, entry: self._sample(entry, folder, i),
            lambda i, _: f"{path.name}[{i}]",
            limit,
        )

    def _sample(self, entry: dict, folder: Path, i: int) -> Sample:
        require(entry, FIELDS)
        images = [read_image_file(folder, p) for p in entry["input_image_path"]]
        if not images:
            raise ValueError("input_image_path is empty")
        options_text = str(entry["options"])
        choices = split_inline_options(options_text)
        if not choices:
            raise ValueError(f"options {options_text!r} are not lettered lines 'A: ...'")
        letter = answer_letter(entry["output"], len(choices))
        context = str(entry.get("context") or "")
        question = f"{entry['question']}\n{context}\n{options_text}\n{LETTER_INSTRUCTION}"
        return self.choice_sample(
            f"{entry['task']}#{i}",
            task=str(entry["task"]),
            images=images,
            question=question.replace("\n\n", "\n"),
            answer=letter,
            choices=choices,
        )
