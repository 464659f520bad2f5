"""Answer balance per split: the table the GX balance expectations check.

A model can score well on a biased split by always answering the same letter or the
same image. Two split-level rules guard against it:

- option_balance: for choice questions, the share of answers that are letter L must not
  exceed ``max(max_option_share, fair_L + option_slack)``, where the fair share
  ``fair_L = mean over questions of [L is offered] / n_choices`` (with two-option
  questions a letter is fairly chosen half the time, above a 0.40 cap).
- image_index_balance: for answers that name an image (image_index, image_bbox), the
  share answering image k must not exceed ``fair_k + image_index_slack`` with
  ``fair_k = mean over questions of [k <= n_images] / n_images``.

Splits with fewer applicable rows than ``balance_min_rows`` are skipped (reported).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from miva.data.schema import CHOICE_LETTERS


@dataclass(frozen=True)
class BalanceRow:
    rule: str
    split: str
    value: str  # letter or image number
    count: int
    n: int
    share: float
    fair: float
    limit: float

    def to_dict(self) -> dict:
        return asdict(self)


def option_balance(
    rows: Iterable[tuple[str, int, int]], max_share: float, slack: float, min_rows: int
) -> tuple[list[BalanceRow], list[str]]:
    """`rows` are (split, answer letter position 0-based, n_choices) of choice questions.

    Worked example: 4 rows of a split, all two-option, answers A, A, A, B ->
    share(A) = 0.75, fair(A) = 0.5, limit = max(0.40, 0.5 + 0.10) = 0.60 -> A fails.

    >>> out, _ = option_balance([("t", 0, 2)] * 3 + [("t", 1, 2)], 0.40, 0.10, 1)
    >>> [(r.value, r.share, r.fair, round(r.limit, 2)) for r in out]
    [('A', 0.75, 0.5, 0.6), ('B', 0.25, 0.5, 0.6)]
    """
    by_split: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for split, pos, n_choices in rows:
        by_split[split].append((pos, n_choices))
    out, skipped = [], []
    for split in sorted(by_split):
        items = by_split[split]
        if len(items) < min_rows:
            skipped.append(f"option_balance: split {split} has {len(items)} < {min_rows} rows")
            continue
        n = len(items)
        counts = Counter(pos for pos, _ in items)
        for pos in range(max(nc for _, nc in items)):
            fair = sum(1 / nc for _, nc in items if pos < nc) / n
            share = counts.get(pos, 0) / n
            out.append(
                BalanceRow(
                    "option_balance",
                    split,
                    CHOICE_LETTERS[pos],
                    counts.get(pos, 0),
                    n,
                    share,
                    fair,
                    max(max_share, fair + slack),
                )
            )
    return out, skipped


def image_index_balance(
    rows: Iterable[tuple[str, int, int]], slack: float, min_rows: int
) -> tuple[list[BalanceRow], list[str]]:
    """`rows` are (split, answered image number 1-based, n_images).

    Worked example: 2 rows with 2 images and 2 with 4, answers 1, 1, 1, 2 ->
    fair(1) = (1/2 + 1/2 + 1/4 + 1/4) / 4 = 0.375, share(1) = 0.75 > 0.375 + 0.1.

    >>> out, _ = image_index_balance([("t", 1, 2), ("t", 1, 2), ("t", 1, 4), ("t", 2, 4)], 0.1, 1)
    >>> [(r.value, r.share, r.fair) for r in out]
    [('1', 0.75, 0.375), ('2', 0.25, 0.375), ('3', 0.0, 0.125), ('4', 0.0, 0.125)]
    """
    by_split: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for split, k, n_images in rows:
        by_split[split].append((k, n_images))
    out, skipped = [], []
    for split in sorted(by_split):
        items = by_split[split]
        if len(items) < min_rows:
            skipped.append(f"image_index_balance: split {split} has {len(items)} < {min_rows} rows")
            continue
        n = len(items)
        counts = Counter(k for k, _ in items)
        for k in range(1, max(ni for _, ni in items) + 1):
            fair = sum(1 / ni for _, ni in items if k <= ni) / n
            share = counts.get(k, 0) / n
            out.append(
                BalanceRow(
                    "image_index_balance",
                    split,
                    str(k),
                    counts.get(k, 0),
                    n,
                    share,
                    fair,
                    fair + slack,
                )
            )
    return out, skipped
