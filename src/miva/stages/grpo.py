"""The grpo stage: GRPO with multi-turn tool use (one process; the pipeline's multi-node
path submits a TrainJob that runs this same stage under torchrun)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from miva.config import MivaConfig
from miva.stages.locations import start_model, training_dataset
from miva.stages.result import StageResult
from miva.stages.tracking import stage_run


def grpo(
    cfg: MivaConfig,
    dataset: str | Path | None = None,
    out: str | Path | None = None,
    model: str | Path | None = None,
    progress: bool = True,
) -> StageResult[Any]:
    """Train `model` (default: the SFT model when SFT ran, else `model.name_or_path`) with
    GRPO on `dataset` (default validate's clean rows); save it to `out` (default
    `grpo.output`). `grpo.resume` continues from the last checkpoint in `out`."""
    from miva.rl.grpo import train

    dataset = str(dataset or training_dataset(cfg))
    out = str(out or cfg.grpo.output)
    start = str(model or start_model(cfg))
    with stage_run(cfg, "grpo", [(dataset, "train")]):
        res = train(cfg, start, dataset, out, resume=cfg.grpo.resume, progress=progress)
    last = res.history[-1] if res.history else {}
    metrics = {
        k: float(v)
        for k, v in last.items()
        if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)
    }
    reward = metrics.get("train/reward_mean", math.nan)
    accuracy = metrics.get("train/accuracy", math.nan)
    return StageResult(
        "grpo",
        out,
        res,
        metrics,
        summary=f"{res.steps} steps from {start}: reward {reward:.3f}, accuracy "
        f"{accuracy:.3f}, skipped {res.skipped_steps}",
        details=[f"curves: {res.curve}"] if res.curve else [],
    )
