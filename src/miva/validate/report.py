"""The gate's verdict: every rule with pass/fail, counts and example failing rows.

`report.json` is `Report.to_dict()`; `summary()` is the short text printed by the CLI.
Severities: `critical` (failure fails the gate), `quarantine` (failing rows move to
quarantine; the gate fails only when too many rows do), `warning` (reported only).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from miva.errors import MivaError

MAX_EXAMPLES = 5


class ValidationFailed(MivaError):
    """The dataset did not pass the gate (outputs are still written); `report` is its verdict."""

    exit_code = 4

    def __init__(self, message: str, report: Report | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class RuleResult:
    name: str
    kind: str  # dataset | gx | row | cross | split
    severity: str  # critical | quarantine | warning
    description: str
    passed: bool
    checked: int = 0
    failed: int = 0
    examples: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    dataset: str
    output: str
    rules: list[RuleResult]
    rows_read: int
    # rows of unreadable shards: from their parquet footers, else from dataset.json's counts
    rows_lost_on_disk: int
    rows_lost_unknown_shards: list[str]  # unreadable shards whose rows nothing can count
    rows_clean: int
    rows_quarantined: int
    quarantine_by_rule: dict[str, int]
    max_quarantine_fraction: float
    files: list[dict[str, Any]]
    clean_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    # split -> rows of rows_lost_on_disk counted from dataset.json (footer unreadable too)
    rows_lost_by_manifest: dict[str, int] = field(default_factory=dict)

    @property
    def rows_total(self) -> int:
        return self.rows_read + self.rows_lost_on_disk

    @property
    def quarantine_fraction(self) -> float:
        total = self.rows_total
        return (self.rows_quarantined + self.rows_lost_on_disk) / total if total else 0.0

    @property
    def failed_critical(self) -> list[RuleResult]:
        return [r for r in self.rules if r.severity == "critical" and not r.passed]

    @property
    def verdict_reasons(self) -> list[str]:
        reasons = [f"critical rule {r.name} failed" for r in self.failed_critical]
        if self.quarantine_fraction > self.max_quarantine_fraction:
            reasons.append(
                f"quarantined fraction {self.quarantine_fraction:.3f} > "
                f"validate.max_quarantine_fraction {self.max_quarantine_fraction}"
            )
        return reasons

    @property
    def passed(self) -> bool:
        return not self.verdict_reasons

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "output": self.output,
            "verdict": "pass" if self.passed else "fail",
            "verdict_reasons": self.verdict_reasons,
            "rows": {
                "read": self.rows_read,
                "lost_on_disk": self.rows_lost_on_disk,
                "lost_counted_from_manifest": self.rows_lost_by_manifest,
                "lost_unknown_count_in": self.rows_lost_unknown_shards,
                "total": self.rows_total,
                "clean": self.rows_clean,
                "quarantined": self.rows_quarantined,
                "quarantine_fraction": round(self.quarantine_fraction, 6),
                "max_quarantine_fraction": self.max_quarantine_fraction,
            },
            "quarantine_by_rule": dict(sorted(self.quarantine_by_rule.items())),
            "clean_counts": self.clean_counts,
            "rules": [r.to_dict() for r in self.rules],
            "files": self.files,
            "timings_s": self.timings_s,
        }


def count_by_rule(reasons_per_row: list[list[str]]) -> dict[str, int]:
    """Rows per rule (a row failing two rules counts once for each)."""
    from miva.validate.rows import rule_of

    counts: Counter[str] = Counter()
    for reasons in reasons_per_row:
        for rule in {rule_of(r) for r in reasons}:
            counts[rule] += 1
    return dict(counts)


def summary(report: Report) -> str:
    """A few lines for a person: rules failed, rows quarantined by reason, verdict."""
    lines = [
        f"validated {report.dataset}: {report.rows_total} rows, {report.rows_clean} clean, "
        f"{report.rows_quarantined} quarantined"
        + (f", {report.rows_lost_on_disk} unreadable on disk" if report.rows_lost_on_disk else "")
        + f" ({report.quarantine_fraction:.1%})"
    ]
    for split, lost in report.rows_lost_by_manifest.items():
        lines.append(f"  {lost} {split} rows lost in unreadable shards (counted from dataset.json)")
    for shard in report.rows_lost_unknown_shards:
        lines.append(f"  unreadable shard with unknown row count: {shard}")
    failed = [r for r in report.rules if not r.passed]
    if failed:
        lines.append("rules failed:")
        for r in failed:
            example = f" e.g. {r.examples[0]}" if r.examples else ""
            detail = f" ({r.details[0]})" if r.details and not r.examples else ""
            lines.append(f"  [{r.severity}] {r.name}: {r.failed} failing{example}{detail}")
    verdict = "PASS" if report.passed else "FAIL: " + "; ".join(report.verdict_reasons)
    lines.append(f"verdict: {verdict}")
    lines.append(f"outputs: {report.output}")
    return "\n".join(lines)
