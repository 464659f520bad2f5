"""The validation gate: a great-expectations suite over the metadata table plus row checks.

`validate_dataset(source, out, cfg.validate_)` writes report.json, data_docs/, clean/ and
quarantine/ and returns the `Report`; `Report.passed` is the verdict.
"""

from miva.validate.report import Report, RuleResult, ValidationFailed, summary

__all__ = ["Report", "RuleResult", "ValidationFailed", "summary", "validate_dataset"]


def validate_dataset(*args, **kwargs):
    """See `miva.validate.gate.validate_dataset` (imported lazily: it pulls in pandas)."""
    from miva.validate.gate import validate_dataset as run

    return run(*args, **kwargs)
