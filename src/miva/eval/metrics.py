"""Benchmark-level metrics: aggregation of per-item scores into the numbers benchmarks publish.

Per-item scoring (choice, number, EM/F1, IoU, image+box) lives in ONE place,
`miva.rl.rewards.accuracy`; this module only aggregates (pure functions, stdlib only):

- `mean`, `per_group_means`, `macro_mean`: accuracy per task and the mean over tasks
  (MIG-Bench's headline, MMIU's "accuracy averaged per task").
- `acc_at_iou`: the share of IoUs at or above a threshold (Acc@0.5).
- `pass_at_k`: the unbiased pass@k estimator of Chen et al. (2021).
- `cycle_accuracy`: HR-Bench's accuracy per cycle, averaged over cycles.
- `average_precision`: COCO-style AP at one IoU threshold (101-point interpolation),
  used for MC-Bench's instance AP50.
- `cjk_spaced`: puts spaces around CJK characters so that SQuAD token F1 counts Chinese
  per character (MAT's scoring of Chinese answers).
"""

from __future__ import annotations

import math
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass


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


def acc_at_iou(ious: Iterable[float], threshold: float = 0.5) -> float:
    """Share of IoUs >= threshold.

    >>> acc_at_iou([0.49, 0.5, 0.9, 0.0])
    0.5
    """
    return mean(1.0 if i >= threshold else 0.0 for i in ious)


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


# ----------------------------------------------------------------------------- detection AP


@dataclass(frozen=True)
class Detection:
    """A predicted box on one image (`key` names the image) with a confidence."""

    key: Hashable
    box: tuple[float, float, float, float]
    confidence: float = 1.0


def match_detections(
    detections: Sequence[Detection],
    ground_truth: Mapping[Hashable, Sequence[Sequence[float]]],
    iou: Callable[[Sequence[float], Sequence[float]], float],
    threshold: float = 0.5,
) -> list[tuple[float, bool]]:
    """COCO-style greedy matching: detections in order of confidence (stable), each takes the
    unmatched ground-truth box of its image with the highest IoU >= threshold.

    Returns (confidence, is_true_positive) per detection, in matching order.
    """
    order = sorted(range(len(detections)), key=lambda i: -detections[i].confidence)
    taken: dict[Hashable, set[int]] = defaultdict(set)
    out: list[tuple[float, bool]] = []
    for i in order:
        det = detections[i]
        best, best_j = threshold, -1
        for j, gt in enumerate(ground_truth.get(det.key, ())):
            if j in taken[det.key]:
                continue
            value = iou(det.box, gt)
            if value >= best:
                best, best_j = value, j
        if best_j >= 0:
            taken[det.key].add(best_j)
        out.append((det.confidence, best_j >= 0))
    return out


def average_precision(matches: Sequence[tuple[float, bool]], n_ground_truth: int) -> float:
    """COCO AP from matched detections (in confidence order): precision made monotone from
    the right, sampled at the 101 recall points 0, 0.01, ..., 1 (0 beyond the reached recall).

    Two ground truths; detections TP, FP, TP -> recall 1/2, 1/2, 1; precision 1, 1/2, 2/3.
    Monotone precision: 1, 2/3, 2/3. Recall points 0..0.50 (51 points) take 1,
    0.51..1.00 (50 points) take 2/3 -> AP = (51 + 50 * 2/3) / 101 = 0.83498...

    >>> round(average_precision([(1, True), (1, False), (1, True)], 2), 5)
    0.83498
    """
    if n_ground_truth <= 0:
        raise ValueError("average precision needs at least one ground-truth box")
    tp = fp = 0
    recall: list[float] = []
    precision: list[float] = []
    for _, hit in matches:
        tp += int(hit)
        fp += int(not hit)
        recall.append(tp / n_ground_truth)
        precision.append(tp / (tp + fp))
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    total = 0.0
    for step in range(101):
        r = step / 100
        idx = next((i for i, rc in enumerate(recall) if rc >= r - 1e-12), None)
        total += precision[idx] if idx is not None else 0.0
    return total / 101


# ----------------------------------------------------------------------------- CJK text


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF  # CJK unified ideographs
        or 0x3400 <= cp <= 0x4DBF  # extension A
        or 0x20000 <= cp <= 0x2A6DF  # extension B
        or 0xF900 <= cp <= 0xFAFF  # compatibility ideographs
        or 0x3040 <= cp <= 0x30FF  # hiragana, katakana
        or 0xAC00 <= cp <= 0xD7AF  # hangul syllables
    )


def cjk_spaced(text: str) -> str:
    """Each CJK character becomes its own token; non-ASCII punctuation (，。！) is dropped
    (SQuAD normalisation only drops ASCII punctuation).

    >>> cjk_spaced("北京是首都。")
    '北 京 是 首 都'
    >>> cjk_spaced("Tokyo 东京")
    'Tokyo 东 京'
    """
    out: list[str] = []
    for ch in text:
        if ord(ch) > 127 and unicodedata.category(ch).startswith("P"):
            out.append(" ")
        elif _is_cjk(ch):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    return " ".join("".join(out).split())
