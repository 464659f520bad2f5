"""Shared machinery of the multiple-choice benchmarks (BLINK, MMIU, MuirBench, HR-Bench, V*).

Items are `choice` samples whose answer is the option letter; a prediction is scored by
`miva.scoring.score_choice` (letter, "(B)", "B. text" or the option text). A
letter that is not one of the item's options scores 0, as the benchmarks' own scripts do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from miva.data.benchmarks.base import Benchmark, ItemScore
from miva.data.schema import CHOICE_LETTERS, Sample
from miva.scoring import macro_mean, mean, per_group_means, score_choice

LETTER_INSTRUCTION = "Answer with the option's letter from the given choices directly."


def answer_letter(raw: Any, n_options: int) -> str:
    """The gold letter from '(A)', 'A', 'A.' or ' a '; ValueError when it names no option."""
    text = str(raw).strip().strip("()").rstrip(".):").strip().upper()
    letters = CHOICE_LETTERS[:n_options]
    if len(text) != 1 or text not in letters:
        raise ValueError(f"answer {raw!r} is not one of the option letters {list(letters)}")
    return text


def split_inline_options(text: str) -> list[str]:
    """Options written inline as '(A) cat (B) dog' or on lines 'A. cat' / 'A: cat'."""
    found = re.findall(r"\(([A-J])\)\s*(.+?)(?=\s*\([A-J]\)|\n|$)", text)
    if len(found) < 2:
        found = re.findall(r"(?m)^\s*([A-J])\s*[.:)]\s*(.+?)\s*$", text)
    letters = [f[0] for f in found]
    if letters != list(CHOICE_LETTERS[: len(letters)]):
        return []
    return [f[1].strip() for f in found]


class ChoiceBenchmark(Benchmark):
    """Accuracy per task; `overall/accuracy` is the micro or macro mean (see `overall`)."""

    metric: ClassVar[str] = "accuracy"
    overall: ClassVar[str] = "micro"  # "micro": over items; "macro": mean of task means

    def choice_sample(
        self,
        native_id: str,
        *,
        task: str,
        images: list[bytes],
        question: str,
        answer: str,
        choices: list[str],
        **meta: Any,
    ) -> Sample:
        """A test `choice` sample whose question already lists the options."""
        return self.test_sample(
            native_id,
            {"options_in_question": True, **meta},
            task=task,
            images=images,
            question=question,
            answer_type="choice",
            answer=answer,
            choices=choices,
        )

    def score_item(self, sample: Sample, prediction: Any) -> ItemScore:
        valid = prediction is not None and str(prediction).strip() != ""
        value = score_choice(str(prediction), str(sample.answer), sample.choices) if valid else 0.0
        return ItemScore(sample.id, sample.task, value, value >= 1.0, valid)

    def aggregate(
        self,
        samples: Sequence[Sample],
        items: Sequence[ItemScore],
        predictions: Mapping[str, Any],
    ) -> dict[str, float]:
        scores = [it.score for it in items]
        by_task = per_group_means([it.task for it in items], scores)
        out = {f"{task}/accuracy": value for task, value in by_task.items()}
        out["overall/micro_accuracy"] = mean(scores)
        out["overall/macro_accuracy"] = macro_mean(by_task)
        out["overall/accuracy"] = out[f"overall/{self.overall}_accuracy"]
        out["overall/invalid_rate"] = mean(0.0 if it.valid else 1.0 for it in items)
        out["overall/items"] = float(len(items))
        return out
