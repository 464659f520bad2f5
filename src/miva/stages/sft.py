"""The sft stage: the supervised cold start on gold tool-using trajectories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from miva import storage
from miva.config import MivaConfig
from miva.stages.locations import training_dataset
from miva.stages.result import StageResult
from miva.stages.tracking import last_logged, stage_run

METRICS_FILE = "sft_metrics.jsonl"  # written by miva.rl.sft into a local output folder


def sft(
    cfg: MivaConfig,
    dataset: str | Path | None = None,
    out: str | Path | None = None,
    model: str | Path | None = None,
    progress: bool = True,
) -> StageResult[Any]:
    """Train `model` (default `model.name_or_path`) on gold trajectories built from
    `dataset` (default validate's clean rows); save it to `out` (default `sft.output`)."""
    from miva.rl.sft import run_sft

    dataset = str(dataset or training_dataset(cfg))
    out = str(out or cfg.sft.output)
    start = str(model or cfg.model.name_or_path)
    with stage_run(cfg, "sft", [(dataset, "train")]):
        res = run_sft(cfg, start, dataset, out, progress=progress)
    metrics = last_logged(storage.join(out, METRICS_FILE)) or {"sft/loss": res.final_loss}
    return StageResult(
        "sft",
        out,
        res,
        metrics,
        summary=f"{res.steps} steps on {res.gold} gold trajectories, final loss "
        f"{res.final_loss:.4f}",
    )
