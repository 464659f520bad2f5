"""Boxes: IoU, accuracy at an IoU threshold, and COCO-style detection AP.

A box is ``[x1, y1, x2, y2]`` in one pixel convention (the caller converts model
coordinates first, see `miva.agent.coords`). Pure functions (stdlib only).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from miva.scoring.aggregate import mean


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two xyxy boxes (0 for empty or inverted boxes).

    Boxes [0,0,2,2] and [1,1,3,3]: intersection 1, union 4 + 4 - 1 = 7 -> 1/7.

    >>> round(box_iou([0, 0, 2, 2], [1, 1, 3, 3]), 4)
    0.1429
    >>> box_iou([2, 2, 0, 0], [0, 0, 2, 2])
    0.0
    """
    ax1, ay1, ax2, ay2 = (float(v) for v in a)
    bx1, by1, bx2, by2 = (float(v) for v in b)
    area_a = max(ax2 - ax1, 0.0) * max(ay2 - ay1, 0.0)
    area_b = max(bx2 - bx1, 0.0) * max(by2 - by1, 0.0)
    if area_a <= 0 or area_b <= 0:
        return 0.0
    iw = max(min(ax2, bx2) - max(ax1, bx1), 0.0)
    ih = max(min(ay2, by2) - max(ay1, by1), 0.0)
    inter = iw * ih
    union = area_a + area_b - inter
    if not math.isfinite(union) or union <= 0:
        return 0.0
    return inter / union


def acc_at_iou(ious: Iterable[float], threshold: float = 0.5) -> float:
    """Share of IoUs >= threshold.

    >>> acc_at_iou([0.49, 0.5, 0.9, 0.0])
    0.5
    """
    return mean(1.0 if i >= threshold else 0.0 for i in ious)


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
