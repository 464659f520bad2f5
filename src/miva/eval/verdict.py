"""What an accuracy means, in words: against the majority-label share and the starting model.

An accuracy alone cannot tell learning from a constant answer: on a split where one answer
is right 80 % of the time, 0.80 is what answering it always scores. `accuracy_verdict`
reads the flat metrics `miva eval` writes (`eval/<set>/<task>/accuracy`, `.../items`,
`.../majority_share`, `.../accuracy_ci95_low|high`, and with a baseline
`baseline/<set>/<task>/accuracy` and `delta/<set>/<task>/p_value`, the exact McNemar
p-value on the same items) and says whether the model beats each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ALPHA = 0.05  # significance level of the paired test


def accuracy_verdict(metrics: Mapping[str, Any], where: str) -> str | None:
    """One sentence about `eval/<where>/accuracy` (`where` = "<set>/<task>"), or None when
    the metrics lack the items, majority share or interval it needs.

    >>> m = {"eval/test/overall/accuracy": 0.6, "eval/test/overall/items": 100.0,
    ...      "eval/test/overall/majority_share": 0.3, "eval/test/overall/accuracy_ci95_low": 0.5,
    ...      "eval/test/overall/accuracy_ci95_high": 0.69,
    ...      "baseline/test/overall/accuracy": 0.45, "delta/test/overall/p_value": 0.004}
    >>> print(accuracy_verdict(m, "test/overall"))
    test/overall: accuracy 0.600 (95 % CI 0.500-0.690, 100 items) is above the majority share 0.300 (the interval excludes it); it beats the starting model (0.450, +15.0 points, paired p = 0.004).
    """
    acc = metrics.get(f"eval/{where}/accuracy")
    n = metrics.get(f"eval/{where}/items")
    major = metrics.get(f"eval/{where}/majority_share")
    lo = metrics.get(f"eval/{where}/accuracy_ci95_low")
    hi = metrics.get(f"eval/{where}/accuracy_ci95_high")
    if None in (acc, n, major, lo, hi):
        return None
    if lo > major:
        vs_major = f"is above the majority share {major:.3f} (the interval excludes it)"
    elif hi < major:
        vs_major = f"is below the majority share {major:.3f} (the interval excludes it)"
    else:
        vs_major = (
            f"cannot be told from the majority share {major:.3f} (the interval includes it), "
            "so it may be a constant answer"
        )
    text = f"{where}: accuracy {acc:.3f} (95 % CI {lo:.3f}-{hi:.3f}, {int(n)} items) {vs_major}"
    start = metrics.get(f"baseline/{where}/accuracy")
    p = metrics.get(f"delta/{where}/p_value")
    if start is not None and p is not None:
        gain = f"{start:.3f}, {100 * (acc - start):+.1f} points, paired p = {p:.2g}"
        if p < ALPHA and acc > start:
            text += f"; it beats the starting model ({gain})"
        elif p < ALPHA and acc < start:
            text += f"; it is worse than the starting model ({gain})"
        else:
            text += f"; it does not differ detectably from the starting model ({gain})"
    return text + "."


def verdicts(metrics: Mapping[str, Any]) -> list[str]:
    """`accuracy_verdict` for every `eval/<set>/<task>/accuracy` that has what it needs,
    each set's overall line first."""
    wheres = sorted(
        k[len("eval/") : -len("/accuracy")]
        for k in metrics
        if k.startswith("eval/") and k.endswith("/accuracy") and k.count("/") == 3
    )
    wheres.sort(key=lambda w: (w.split("/")[0], w.split("/")[1] != "overall"))
    return [v for w in wheres if (v := accuracy_verdict(metrics, w))]
