"""Difficulty filter: keep items a policy solves sometimes, but not always.

Rejection sampling for RL prompts (MIRG-RL; REFERENCE.md): sample k answers per item
with the starting policy, score each, and keep the items whose pass rate is strictly
between 0 and 1 - an item the policy always or never solves gives every trajectory of a
GRPO group the same reward and so no learning signal.

The policy and the scorer are injected: the trainer passes its model and its accuracy
reward; the defaults here score by exact match with the canonical answer text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from miva.data.schema import Sample

Policy = Callable[[Sample, int], Sequence[str]]  # (sample, k) -> k answer texts
Scorer = Callable[[Sample, str], float]  # (sample, answer text) -> score in [0, 1]


def normalise(text: str) -> str:
    return " ".join(text.strip().lower().split())


def exact_match(sample: Sample, answer: str) -> float:
    """1.0 when `answer` equals `sample.answer_text()` up to case and spacing."""
    return float(normalise(answer) == normalise(sample.answer_text()))


@dataclass
class DifficultyResult:
    kept: list[Sample]
    rates: list[float]  # pass rate of every input item, in input order

    @property
    def dropped(self) -> int:
        return len(self.rates) - len(self.kept)


def pass_rate(sample: Sample, policy: Policy, k: int, scorer: Scorer = exact_match) -> float:
    answers = list(policy(sample, k))
    if len(answers) != k:
        raise ValueError(
            f"policy returned {len(answers)} answers for sample {sample.id}, expected {k}"
        )
    return sum(scorer(sample, a) for a in answers) / k


def filter_by_difficulty(
    samples: Sequence[Sample], policy: Policy, k: int = 4, scorer: Scorer = exact_match
) -> DifficultyResult:
    """Keep the samples whose pass rate over `k` policy answers is in (0, 1)."""
    if k < 2:
        raise ValueError(f"k must be >= 2 to measure a pass rate strictly between 0 and 1, got {k}")
    rates = [pass_rate(s, policy, k, scorer) for s in samples]
    kept = [s for s, r in zip(samples, rates, strict=True) if 0.0 < r < 1.0]
    return DifficultyResult(kept, rates)
