"""The validate stage: the gate. Writes report.json, data_docs/, clean/ and quarantine/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from miva.config import MivaConfig
from miva.stages.result import StageResult
from miva.stages.tracking import log_metrics, stage_run


def validate(
    cfg: MivaConfig,
    dataset: str | Path | None = None,
    out: str | Path | None = None,
    progress: bool = True,
) -> StageResult[Any]:
    """Validate `dataset` (default `synthesize.output`) into `out` (default
    `validate.output`). Raises `ValidationFailed` when the gate fails; the outputs and the
    metrics are written first."""
    from miva.validate import ValidationFailed, summary, validate_dataset

    dataset = str(dataset or cfg.synthesize.output)
    out = str(out or cfg.validate_.output)
    with stage_run(cfg, "validate", [(dataset, "validation")]):
        report = validate_dataset(
            dataset, out, cfg.validate_, progress=progress, data_docs=cfg.validate_.data_docs
        )
        metrics = gate_metrics(report)
        log_metrics(metrics)
        if not report.passed:
            raise ValidationFailed(
                f"the dataset failed the gate ({'; '.join(report.verdict_reasons)}); "
                f"see {out}/report.json and {out}/quarantine/",
                report,
            )
    return StageResult(
        "validate",
        out,
        report,
        metrics,
        summary=f"PASS: {report.rows_clean} clean, {report.rows_quarantined} quarantined "
        f"of {report.rows_total} rows",
        details=summary(report).splitlines(),
    )


def gate_metrics(report: Any) -> dict[str, float]:
    """`validate/rows/<count>` and `validate/quarantine/<rule>` of a validation report."""
    data = report.to_dict()
    out = {f"validate/rows/{k}": float(v) for k, v in _numbers(data.get("rows", {})).items()}
    out.update(
        {
            f"validate/quarantine/{k}": float(v)
            for k, v in _numbers(data.get("quarantine_by_rule", {})).items()
        }
    )
    return out


def _numbers(tree: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in tree.items() if isinstance(v, int | float) and not isinstance(v, bool)}
