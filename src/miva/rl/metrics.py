"""Metrics of the training stages: always a JSONL file, MLflow when a run is active.

Names are namespaced (``train/``, ``rollout/``, ``perf/``, ``sft/``); the same names go to
the JSONL file, MLflow and the curves. MLflow is only used when the caller (the stage's
MLflow run) has an active run; this module never imports it by itself. Every name logged
here is defined in `miva.metric_names`.

With several training processes the metrics are already reduced over ranks when they get
here; only rank 0's logger writes (``write=True``), the others keep the history in memory.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any


class MetricsLogger:
    def __init__(self, path: str | Path | None, prefix: str = "", write: bool = True) -> None:
        self.path = Path(path) if path else None
        self.prefix = prefix
        self.write = write
        self.history: list[dict[str, Any]] = []
        if self.path and self.write:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def truncate_after(self, step: int) -> None:
        """On resume: keep only the rows of steps <= `step` (a killed run may have logged more)."""
        if not self.path or not self.path.exists():
            return
        rows = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if r["step"] <= step]
        if self.write:
            self.path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        self.history = rows

    def log(self, step: int, metrics: dict[str, float]) -> dict[str, float]:
        named = {
            (k if "/" in k or not self.prefix else self.prefix + k): float(v)
            for k, v in metrics.items()
        }
        row = {"step": step, **named}
        self.history.append(row)
        if not self.write:
            return named
        if self.path:
            with self.path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
        mlflow = sys.modules.get("mlflow")
        if mlflow is not None and mlflow.active_run() is not None:
            from miva.metric_names import metric_key

            finite = {metric_key(k): v for k, v in named.items() if math.isfinite(v)}
            mlflow.log_metrics(finite, step=step)
        return named


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
