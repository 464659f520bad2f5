"""The promotion policy: does a newly registered version replace the current champion?

Pure: plain dicts in, a `Decision` out; no MLflow. The rules, in order:

1. The challenger must report the primary metric and every guard metric; otherwise refuse.
2. No champion yet: the challenger becomes champion (the first model).
3. The challenger and the champion must be scored on the same eval set (same digest) and
   both digests must be known; otherwise refuse, since the numbers are not comparable.
4. The champion must report the primary metric and every guard metric; otherwise refuse
   (promote by hand with `miva registry promote` if that is intended).
5. Primary: ``challenger - champion >= margin`` and ``> 0`` (it must beat, not tie).
6. Guards: for each guard g with tolerance t, ``champion[g] - challenger[g] <= t``
   (no guard may fall by more than its tolerance). Higher is better for every metric.

Example (margin 0.01, guard `eval/test/format` tolerance 0.05):
champion accuracy 0.50, format 0.90; challenger accuracy 0.52, format 0.87.
Primary: 0.52 - 0.50 = 0.02 >= 0.01; guard: 0.90 - 0.87 = 0.03 <= 0.05 -> promote.

>>> d = decide({"acc": 0.52, "fmt": 0.87}, "e1", {"acc": 0.50, "fmt": 0.90}, "e1",
...            primary="acc", margin=0.01, guards={"fmt": 0.05})
>>> d.promote, d.outcome
(True, 'promoted')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Comparisons tolerate float noise of this size (0.1 + 0.2 - 0.3 is not 0 in binary).
EPS = 1e-9


@dataclass
class Decision:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    first: bool = False

    @property
    def outcome(self) -> str:
        if not self.promote:
            return "rejected"
        return "promoted (first model)" if self.first else "promoted"

    def summary(self) -> str:
        return f"{self.outcome}: " + "; ".join(self.reasons)


def _missing(metrics: dict[str, float], names: list[str]) -> list[str]:
    out = []
    for name in names:
        value = metrics.get(name)
        if value is None or not isinstance(value, (int, float)) or math.isnan(value):
            out.append(name)
    return out


def decide(
    challenger: dict[str, float],
    challenger_eval_digest: str | None,
    champion: dict[str, float] | None,
    champion_eval_digest: str | None,
    *,
    primary: str,
    margin: float = 0.0,
    guards: dict[str, float] | None = None,
    champion_version: str | None = None,
) -> Decision:
    """Apply the promotion rules (module docstring) to one challenger."""
    guards = dict(guards or {})
    needed = [primary, *sorted(guards)]
    champ = f"champion v{champion_version}" if champion_version else "champion"

    missing = _missing(challenger, needed)
    if missing:
        return Decision(False, [f"challenger lacks metric(s) {missing}; cannot judge it"])
    if champion is None:
        return Decision(
            True,
            [
                f"no champion yet: first model becomes champion ({primary} = {challenger[primary]:.4f})"
            ],
            first=True,
        )
    if not challenger_eval_digest or not champion_eval_digest:
        which = "challenger" if not challenger_eval_digest else champ
        return Decision(False, [f"{which} has no eval-set digest; scores are not comparable"])
    if challenger_eval_digest != champion_eval_digest:
        return Decision(
            False,
            [
                f"eval set differs: challenger digest {challenger_eval_digest} != "
                f"{champ} digest {champion_eval_digest}; scores are not comparable"
            ],
        )
    missing = _missing(champion, needed)
    if missing:
        return Decision(
            False,
            [f"{champ} lacks metric(s) {missing}; promote by hand if intended"],
        )

    reasons: list[str] = []
    ok = True
    delta = challenger[primary] - champion[primary]
    if delta > EPS and delta >= margin - EPS:
        reasons.append(
            f"{primary}: {challenger[primary]:.4f} vs {champion[primary]:.4f} "
            f"(+{delta:.4f} >= margin {margin:g})"
        )
    else:
        ok = False
        reasons.append(
            f"{primary}: {challenger[primary]:.4f} vs {champion[primary]:.4f} "
            f"({delta:+.4f} does not beat the {champ} by margin {margin:g})"
        )
    for name in sorted(guards):
        drop = champion[name] - challenger[name]
        tol = guards[name]
        if drop > tol + EPS:
            ok = False
            reasons.append(
                f"guard {name} fell by {drop:.4f} > tolerance {tol:g} "
                f"({champion[name]:.4f} -> {challenger[name]:.4f})"
            )
        else:
            reasons.append(f"guard {name}: change {-drop:+.4f} within tolerance {tol:g}")
    return Decision(ok, reasons)
