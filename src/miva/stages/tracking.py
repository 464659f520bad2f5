"""How a stage records itself: one MLflow stage run (when `registry.track_runs` is on; under
torchrun on rank 0 only) with its dataset inputs, and its metrics logged once it succeeded."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from miva.config import MivaConfig
from miva.errors import MivaError


def tracked(cfg: MivaConfig) -> bool:
    """Whether this process records the stage in MLflow: `registry.track_runs` is on and,
    under torchrun, this is rank 0 (the other ranks never talk to MLflow)."""
    from miva.rl.distributed import world_from_env

    return cfg.registry.track_runs and world_from_env().is_main


@contextmanager
def stage_run(
    cfg: MivaConfig, stage: str, inputs: list[tuple[str | Path, str]] = ()
) -> Iterator[None]:
    """The stage's MLflow run around the block (when `tracked`); `inputs` are (dataset,
    context) pairs logged as run inputs (a dataset without dataset.json is reported, not
    fatal)."""
    if not tracked(cfg):
        yield
        return
    from miva.registry import tracking

    with tracking.stage_run(cfg, stage):
        for path, context in inputs:
            try:
                tracking.log_dataset(path, context=context)
            except MivaError as exc:
                print(f"miva {stage}: warning: dataset lineage not logged ({exc})", file=sys.stderr)
        yield


def log_metrics(metrics: dict[str, float]) -> None:
    """Log flat metrics to the active MLflow run, if there is one (names made MLflow-safe)."""
    mlflow = sys.modules.get("mlflow")
    if not metrics or mlflow is None or mlflow.active_run() is None:
        return
    from miva.metric_names import metric_key

    mlflow.log_metrics({metric_key(k): float(v) for k, v in metrics.items()})


def last_logged(path: str | Path) -> dict[str, float]:
    """The last row of a metrics JSONL file (one row per logged step), without its step;
    {} when the file is not on this machine."""
    from miva import storage

    p = Path(path)
    if storage.is_remote(path) or not p.exists():
        return {}
    rows = [line for line in p.read_text().splitlines() if line.strip()]
    if not rows:
        return {}
    last = json.loads(rows[-1])
    return {
        k: float(v)
        for k, v in last.items()
        if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)
    }
