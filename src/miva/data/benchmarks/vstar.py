"""V* Bench (Wu & Xie, 2023): 191 high-resolution visual-search questions in two
categories (direct attributes, relative position).

Native layout (the release `craigwu/vstar_bench`): `test_questions.jsonl` with one
{`question_id`, `image` (path relative to the folder), `text` (question with the options
inline as "(A) ... (B) ..."), `label` (the correct letter or option index), `category`}
per line, and the category folders with the images. Metric: accuracy (and per category).
"""

from __future__ import annotations

from pathlib import Path

from miva.data.benchmarks.base import Converted, convert_items, load_json, read_image_file, require
from miva.data.benchmarks.choice import ChoiceBenchmark, answer_letter, split_inline_options
from miva.data.schema import CHOICE_LETTERS, Sample
from miva.errors import DataError


class VStar(ChoiceBenchmark):
    name = "vstar"
    title = "V* Bench: high-resolution visual search, accuracy"
    expects = (
        "<folder>/test_questions.jsonl: {question_id, image, text (options inline '(A) ...'), "
        "label, category} per line; images at <folder>/<image>"
    )
    overall = "micro"

    def convert(self, folder: Path, limit: int | None = None) -> Converted:
        path = folder / "test_questions.jsonl"
        if not path.is_file():
            raise DataError(f"{path}: missing; expected V*'s test_questions.jsonl in {folder}")
        entries = load_json(path)
        if isinstance(entries, dict):
            entries = [entries]
        return convert_items(
            enumerate(entries),
            lambda _, entry: self._sample(entry, folder),
            lambda i, entry: (
                f"{path.name}#{entry.get('question_id', i) if isinstance(entry, dict) else i}"
            ),
            limit,
        )

    def _sample(self, entry: dict, folder: Path) -> Sample:
        require(entry, ["question_id", "image", "text", "label"], "line")
        text = str(entry["text"])
        choices = split_inline_options(text)
        if not choices:
            raise ValueError("no inline options '(A) ...' in text")
        label = entry["label"]
        if isinstance(label, int) and not isinstance(label, bool):
            if not 0 <= label < len(choices):
                raise ValueError(f"label {label} is not an option index 0..{len(choices) - 1}")
            letter = CHOICE_LETTERS[label]
        else:
            letter = answer_letter(label, len(choices))
        category = str(entry.get("category") or Path(str(entry["image"])).parent.name or "vstar")
        return self.choice_sample(
            str(entry["question_id"]),
            task=category,
            images=[read_image_file(folder, entry["image"])],
            question=text,
            answer=letter,
            choices=choices,
        )
