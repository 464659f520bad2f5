"""Verifier: rejects ambiguous or unanswerable items and keeps answers balanced.

Item checks (`verify`), each returning a reason string when it fails:
- `ambiguous`: more than one answer is equally valid (two matching targets, a tie, two
  options with the same text), or none is (`unanswerable`);
- `too_small`: a box the answer depends on is below the minimum visible size;
- `single_image`: a cross-image item (counting, comparison, difference) whose answer can
  be read from one image alone.

Split checks (`balance_violations`): no option letter is the answer of more than
`max_option_share` of a split's multiple-choice items, and no image number is the answer
of more than its fair share plus `image_slack` of a split's image-valued items (fair share
of image k = mean over items of 1/n_images when k <= n_images). The generator meets them
by construction with `assign_balanced` (each answer goes where the most of its fair quota
is left).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from miva.data.schema import CHOICE_LETTERS
from miva.data.synth.solver import Solution

CROSS_IMAGE_TASKS = frozenset({"counting", "comparison", "difference"})


def min_side_px(image_size: int, fraction: float) -> float:
    return max(4.0, image_size * fraction)


def verify(
    task: str,
    solution: Solution,
    image_size: int,
    min_side_fraction: float = 0.04,
    choices: Sequence[str] | None = None,
    answer_text: str | None = None,
) -> list[str]:
    """Reasons to reject an item; an empty list means the item is kept."""
    reasons: list[str] = []
    if solution.candidates > 1:
        reasons.append(f"ambiguous: {solution.candidates} equally valid answers")
    elif solution.value is None or solution.candidates == 0:
        reasons.append("unanswerable: no target matches the question")
    if task in ("counting",) and solution.value == 0:
        reasons.append("unanswerable: nothing to count")
    limit = min_side_px(image_size, min_side_fraction)
    for image, box in solution.evidence:
        side = min(box[2] - box[0], box[3] - box[1])
        if side < limit:
            reasons.append(
                f"too_small: target in image {image} is {side:.0f} px, below {limit:.0f} px"
            )
            break
    if task in CROSS_IMAGE_TASKS and len(solution.images_used) < 2:
        reasons.append("single_image: a cross-image item is answerable from one image alone")
    if choices is not None:
        if len(set(choices)) != len(choices):
            reasons.append("ambiguous: two options have the same text")
        if answer_text is not None and list(choices).count(answer_text) != 1:
            reasons.append("ambiguous: the answer is not exactly one of the options")
    return reasons


# ------------------------------------------------------------------------ balance


def fair_image_shares(n_images: Sequence[int]) -> dict[int, float]:
    """Expected share of answer image k when each item's answer is uniform over its images.

    Example: items with 2 and 4 images -> image 1: (1/2 + 1/4) / 2 = 0.375,
    image 3: (0 + 1/4) / 2 = 0.125.
    """
    if not n_images:
        return {}
    top = max(n_images)
    return {k: sum(1 / n for n in n_images if k <= n) / len(n_images) for k in range(1, top + 1)}


def balance_violations(
    items: Sequence[dict[str, Any]],
    max_option_share: float = 0.40,
    image_slack: float = 0.10,
    min_items: int = 10,
) -> list[str]:
    """Check one split. `items`: dicts with `answer_type`, `answer`, `n_images`.

    Groups (choice items, image-valued items) smaller than `min_items` are not judged:
    with 2 choice items one letter necessarily holds at least 50 %.
    """
    out: list[str] = []
    letters = [it["answer"] for it in items if it["answer_type"] == "choice"]
    if len(letters) >= min_items:
        for letter, count in sorted(Counter(letters).items()):
            share = count / len(letters)
            if share > max_option_share + 1e-9:
                out.append(
                    f"option {letter} answers {share:.0%} of {len(letters)} choice items (> {max_option_share:.0%})"
                )
    imaged = [it for it in items if it["answer_type"] in ("image_index", "image_bbox")]
    if len(imaged) >= min_items:
        fair = fair_image_shares([it["n_images"] for it in imaged])
        got = Counter(answer_image(it["answer_type"], it["answer"]) for it in imaged)
        for k, expected in fair.items():
            share = got.get(k, 0) / len(imaged)
            if share > expected + image_slack + 1e-9:
                out.append(
                    f"image {k} answers {share:.0%} of {len(imaged)} image items (fair {expected:.0%} + {image_slack:.0%})"
                )
    return out


def answer_image(answer_type: str, answer: Any) -> int:
    return int(answer["image"]) if answer_type == "image_bbox" else int(answer)


def assign_balanced(sizes: Sequence[int], tie_break: Sequence[float]) -> list[int]:
    """Balanced 0-based positions: item i gets one of `sizes[i]` positions (an option letter,
    an answer image) so that every position ends near its fair quota.

    Quota of position p = sum over items of 1/size when p < size (the count a uniform random
    choice would give on average). Items are placed fewest positions first, each at the
    position with the most quota left (ties rotated by `tie_break` in [0, 1)). Every count
    then stays within one item of its quota, so a share exceeds its fair share by at most
    1/len(sizes). Example: 12 three-option items -> quotas 4, 4, 4 -> each letter 4 times.
    """
    quota: Counter[int] = Counter()
    for n in sizes:
        for p in range(n):
            quota[p] += 1 / n
    got: Counter[int] = Counter()
    out = [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: (sizes[i], i)):
        n = sizes[i]
        start = int(tie_break[i] * n) % n
        order = [(start + j) % n for j in range(n)]
        pos = max(order, key=lambda p: quota[p] - got[p])
        got[pos] += 1
        out[i] = pos
    return out


def letter(pos: int) -> str:
    return CHOICE_LETTERS[pos]
