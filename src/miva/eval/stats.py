"""Statistics for comparing accuracies: Wilson intervals, the exact McNemar test on paired
items, and the majority-label share that a constant answer scores.

Two models scored on the same items are compared on their discordant pairs only:
b = items only A gets right, c = items only B gets right. Under "no difference" each
discordant item is a fair coin, so the exact two-sided p-value is
min(1, 2 * P(X <= min(b, c))) with X ~ Binomial(b + c, 1/2) (McNemar, exact form).
Unpaired intervals ignore that both models answer the same items and overstate the
uncertainty of a small real gain.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (95 % for z = 1.96); (0, 0) when n = 0."""
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def binomial_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), exact (log-space sums, safe for large n)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    log_terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
        for i in range(k + 1)
    ]
    top = max(log_terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in log_terms))


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts b and c."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * binomial_cdf_half(min(b, c), n))


@dataclass(frozen=True)
class PairedComparison:
    """Model A against model B on the same n items."""

    n: int
    acc_a: float
    acc_b: float
    only_a: int  # b: items only A answers correctly
    only_b: int  # c: items only B answers correctly
    p_value: float  # exact McNemar, two-sided

    @property
    def gain_points(self) -> float:
        """Accuracy of A minus accuracy of B, in percentage points."""
        return 100.0 * (self.acc_a - self.acc_b)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "acc_a": self.acc_a,
            "acc_b": self.acc_b,
            "only_a": self.only_a,
            "only_b": self.only_b,
            "gain_points": self.gain_points,
            "p_value": self.p_value,
        }


def compare_paired(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> PairedComparison:
    """Paired comparison of two per-item correctness vectors (same items, same order)."""
    if len(correct_a) != len(correct_b):
        raise ValueError(
            f"paired comparison needs the same items: {len(correct_a)} vs {len(correct_b)}"
        )
    n = len(correct_a)
    only_a = sum(1 for a, b in zip(correct_a, correct_b, strict=True) if a and not b)
    only_b = sum(1 for a, b in zip(correct_a, correct_b, strict=True) if b and not a)
    return PairedComparison(
        n=n,
        acc_a=sum(map(bool, correct_a)) / n if n else 0.0,
        acc_b=sum(map(bool, correct_b)) / n if n else 0.0,
        only_a=only_a,
        only_b=only_b,
        p_value=mcnemar_exact(only_a, only_b),
    )


def majority_share(answers: Iterable[Any]) -> float:
    """Share of the most frequent answer: what answering one constant scores (0 when empty).
    Answers are compared by their JSON text, so lists and dicts count too."""
    counts = Counter(json.dumps(a, sort_keys=True) for a in answers)
    total = sum(counts.values())
    return counts.most_common(1)[0][1] / total if total else 0.0
