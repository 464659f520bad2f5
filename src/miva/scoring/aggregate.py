"""Aggregation of per-item scores into the numbers benchmarks publish (stdlib only).

- `mean`, `per_group_means`, `macro_mean`: accuracy per task and the mean over tasks
  (MIG-Bench's headline, MMIU's "accuracy averaged per task").
- `pass_at_k`: the unbiased pass@k estimator of Chen et al. (2021).
- `cycle_accuracy`: HR-Bench's accuracy per cycle, averaged over cycles.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean; 0.0 for no values (a set with no items scores nothing).

    >>> mean([1, 0, 1, 1])
    0.75
    """
    vals = [float(v) for v in values]
    return sum(vals) / len(vals) if vals else 0.0


def per_group_means(groups: Sequence[Hashable], values: Sequence[float]) -> dict[Hashable, float]:
    """Mean of `values` per group label, groups in first-seen order.

    >>> per_group_means(["a", "b", "a"], [1, 0, 0])
    {'a': 0.5, 'b': 0.0}
    """
    if len(groups) != len(values):
        raise ValueError(f"{len(groups)} group labels for {len(values)} values")
    acc: dict[Hashable, list[float]] = defaultdict(list)
    for g, v in zip(groups, values, strict=True):
        acc[g].append(float(v))
    return {g: mean(vs) for g, vs in acc.items()}


def macro_mean(by_group: Mapping[Hashable, float]) -> float:
    """Unweighted mean over groups (each task counts once, whatever its size).

    Task a: 1/2 correct, task b: 3/3 -> macro (0.5 + 1.0) / 2 = 0.75 (micro would be 4/5).

    >>> macro_mean({"a": 0.5, "b": 1.0})
    0.75
    """
    return mean(by_group.values())


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k).

    n=4, c=1, k=2: 1 - C(3,2)/C(4,2) = 1 - 3/6 = 0.5.

    >>> pass_at_k(4, 1, 2)
    0.5
    >>> pass_at_k(4, 0, 2), pass_at_k(4, 3, 2)
    (0.0, 1.0)
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def cycle_accuracy(cycles: Sequence[Hashable], correct: Sequence[float]) -> float:
    """HR-Bench: accuracy within each cycle (the same questions with shifted options),
    then the mean over cycles.

    Cycle 0: 2/2 right, cycle 1: 1/2 right -> (1.0 + 0.5) / 2 = 0.75.

    >>> cycle_accuracy([0, 0, 1, 1], [1, 1, 1, 0])
    0.75
    """
    return macro_mean(per_group_means(cycles, correct))
