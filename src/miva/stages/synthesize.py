"""The synthesize stage: a multi-image QA dataset folder from the configured source."""

from __future__ import annotations

from pathlib import Path

from miva.config import MivaConfig
from miva.data.io import DatasetInfo
from miva.stages.result import StageResult
from miva.stages.tracking import stage_run, tracked


def synthesize(
    cfg: MivaConfig, out: str | Path | None = None, progress: bool = True
) -> StageResult[DatasetInfo]:
    """Generate `synthesize.n` samples (rendered scenes, or COCO annotations when
    `synthesize.coco_path` is set) into the dataset folder `out` (default
    `synthesize.output`)."""
    from miva.data.synth.build import run_synth

    out = str(out or cfg.synthesize.output)
    with stage_run(cfg, "synthesize"):
        info = run_synth(cfg.synthesize, out, progress=progress)
        if tracked(cfg):
            from miva.registry.tracking import log_dataset

            log_dataset(out, context="generated")
    splits = ", ".join(f"{s} {sum(t.values())}" for s, t in info.counts.items())
    return StageResult(
        "synthesize",
        out,
        info,
        summary=f"{info.total} samples ({splits}), digest {info.digest[:12]}",
        details=_details(info),
    )


def _details(info: DatasetInfo) -> list[str]:
    """Counts per split and task, generator rejects and balance warnings."""
    lines = [
        f"  {split}: " + ", ".join(f"{t}={c}" for t, c in counts.items())
        for split, counts in info.counts.items()
    ]
    rejects = info.generator.get("verifier_rejects", {})
    if rejects:
        lines.append(
            "  rejected while generating: " + ", ".join(f"{k}={v}" for k, v in rejects.items())
        )
    for split, problems in info.generator.get("balance_violations", {}).items():
        lines.append(f"  warning: {split} split not balanced: {'; '.join(problems)}")
    return lines
