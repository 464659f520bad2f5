"""HR-Bench 4K / 8K (Wang et al., 2024): 800 high-resolution single-image multiple-choice
items each, fine-grained single-instance (FSP) and cross-instance (FCP) perception.

Native layout (the release `DreamMr/HR-Bench`): `hr_bench_4k.tsv` and/or `hr_bench_8k.tsv`,
tab-separated with columns `index`, `question`, `answer` (letter), `category`, `A`..`D`,
`cycle_category`, `image` (base64). Each file is scored as its own task (`hr_bench_4k`,
...). Metric: accuracy within each cycle (`cycle_category`), averaged over cycles, as the
official evaluation (VLMEvalKit's HR-Bench scorer) does, per file and, as the paper
reports them, per `category` (`single`: fine-grained single-instance perception, FSP;
`cross`: cross-instance, FCP) of each file: `hr_bench_4k_single/accuracy` and
`hr_bench_4k_cross/accuracy` beside `hr_bench_4k/accuracy`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from miva.data.benchmarks.base import (
    Converted,
    ItemScore,
    convert_items,
    image_bytes,
    letter_options,
)
from miva.data.benchmarks.choice import LETTER_INSTRUCTION, ChoiceBenchmark, answer_letter
from miva.data.schema import Sample
from miva.errors import DataError
from miva.scoring import cycle_accuracy, mean

COLUMNS = ["index", "question", "answer", "category", "A", "B", "C", "D", "cycle_category", "image"]


class HrBench(ChoiceBenchmark):
    name = "hr-bench"
    title = "HR-Bench 4K/8K: high-resolution perception, cycle-averaged accuracy"
    expects = (
        "<folder>/hr_bench_4k.tsv and/or hr_bench_8k.tsv (or any *.tsv); columns index, question, "
        "answer, category, A, B, C, D, cycle_category, image (base64)"
    )
    metric = "accuracy"

    def convert(self, folder: Path, limit: int | None = None) -> Converted:
        files = sorted(folder.glob("*.tsv")) if folder.is_dir() else []
        if not files:
            raise DataError(
                f"{folder}: no *.tsv file; expected HR-Bench's hr_bench_4k.tsv / hr_bench_8k.tsv"
            )
        return convert_items(
            ((path, row) for path in files for row in _tsv_rows(path)),
            lambda path, row: self._sample(row, path.stem),
            lambda path, row: f"{path.name}#{row.get('index')}",
            limit,
        )

    def _sample(self, row: dict, variant: str) -> Sample:
        choices = [str(row[c]) for c in "ABCD" if str(row.get(c, "")).strip()]
        if len(choices) < 2:
            raise ValueError("fewer than two options in A..D")
        letter = answer_letter(row["answer"], len(choices))
        if not str(row["image"]).strip():
            raise ValueError("image is empty")
        image = image_bytes(str(row["image"]), "image")
        question = f"{row['question']}\n{letter_options(choices)}\n{LETTER_INSTRUCTION}"
        return self.choice_sample(
            str(row["index"]),
            task=variant,
            images=[image],
            question=question,
            answer=letter,
            choices=choices,
            category=str(row["category"]),
            cycle=str(row["cycle_category"]),
        )

    def aggregate(
        self,
        samples: Sequence[Sample],
        items: Sequence[ItemScore],
        predictions: Mapping[str, Any],
    ) -> dict[str, float]:
        out: dict[str, float] = {}
        tasks = sorted({s.task for s in samples})
        for task in tasks:
            idx = [i for i, s in enumerate(samples) if s.task == task]
            out[f"{task}/accuracy"] = cycle_accuracy(
                [samples[i].meta["cycle"] for i in idx], [items[i].score for i in idx]
            )
            for category in sorted({samples[i].meta["category"] for i in idx}):
                cidx = [i for i in idx if samples[i].meta["category"] == category]
                out[f"{task}_{category}/accuracy"] = cycle_accuracy(
                    [samples[i].meta["cycle"] for i in cidx], [items[i].score for i in cidx]
                )
        out["overall/accuracy"] = mean(out[f"{t}/accuracy"] for t in tasks)
        out["overall/micro_accuracy"] = mean(it.score for it in items)
        out["overall/invalid_rate"] = mean(0.0 if it.valid else 1.0 for it in items)
        out["overall/items"] = float(len(items))
        return out


def _tsv_rows(path: Path) -> list[dict]:
    """The rows of one HR-Bench TSV; a file that cannot be read or lacks columns is a DataError."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises several parser errors
        raise DataError(f"{path}: cannot read as a tab-separated file ({exc})") from exc
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected columns {COLUMNS}")
    return frame.to_dict(orient="records")
