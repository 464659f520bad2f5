"""The register stage: a new model version in the registry, the promotion decision and
its reasons (and, with `registry.deploy.on_promotion`, the new champion's manifest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from miva.config import MivaConfig
from miva.stages.locations import eval_metrics_file
from miva.stages.result import StageResult


def register(
    cfg: MivaConfig,
    model: str | Path | None = None,
    metrics: str | Path | None = None,
    dataset: str | Path | None = None,
    report: str | Path | None = None,
    eval_digest: str | None = None,
) -> StageResult[Any]:
    """Register `model` (default `grpo.output`) with the metrics file `metrics` (default
    `<evaluate.output>/metrics.json`), `dataset` as its training lineage and `report` (a
    file or folder) attached, and apply the promotion policy. Always tracked: the registry
    is MLflow's."""
    from miva.registry.registry import load_metrics, register_model

    model = str(model or cfg.grpo.output)
    metrics_file = str(metrics or eval_metrics_file(cfg.evaluate.output))
    values, digest = load_metrics(metrics_file, cfg.registry.primary_metric, eval_digest)
    reg = register_model(
        cfg,
        model,
        values,
        eval_digest=digest,
        dataset=str(dataset) if dataset else None,
        report=str(report) if report else None,
    )
    return StageResult(
        "register",
        f"{reg.name} v{reg.version}",
        reg,
        summary=reg.headline,
        details=reg.summary.splitlines()
        + ([f"the new champion's InferenceService: {reg.deployed}"] if reg.deployed else []),
    )
