"""What the eval stage writes: `metrics.json` (flat name -> float, plus one string
`eval/<set>/digest` per set that identifies its items), `predictions.parquet`
(one row per item and sample, both models), `summary.json` (per set: items scored and every
skipped item with its reason) and `report.html` (self-contained).

The same flat names go to KFP (`Metrics.log_metric(name, value)` for each entry of
metrics.json; report.html as an `HTML` artifact) and to MLflow (`mlflow.log_metrics`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

from miva.eval.report import write_report
from miva.eval.results import EvalResult

METRICS = "metrics.json"
PREDICTIONS = "predictions.parquet"
SUMMARY = "summary.json"
REPORT = "report.html"


def finite_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Drop NaN/inf (KFP and MLflow reject them); names sorted for stable files."""
    return {k: float(v) for k, v in sorted(metrics.items()) if math.isfinite(float(v))}


def write_outputs(
    result: EvalResult, out: str | Path, config: dict | None = None
) -> dict[str, Path]:
    """Write every output into `out` (a local folder or s3:// URI); returns local paths."""
    import pandas as pd

    from miva import storage

    remote = storage.is_remote(out)
    folder = Path(_tmpdir()) if remote else Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics": folder / METRICS,
        "predictions": folder / PREDICTIONS,
        "summary": folder / SUMMARY,
        "report": folder / REPORT,
    }
    flat: dict[str, float | str] = {**finite_metrics(result.metrics), **result.digests}
    paths["metrics"].write_text(json.dumps(dict(sorted(flat.items())), indent=2))
    frame = pd.DataFrame([asdict(r) for r in result.records])
    frame.to_parquet(paths["predictions"], index=False)
    summary = {
        es.name: {
            "scorer": es.scorer.name,
            "items": len(es.samples),
            "skipped": [asdict(s) for s in es.skipped],
        }
        for es in result.sets
    }
    summary["_run"] = {
        "model": result.main.model,
        "baseline": result.baseline.model if result.baseline else None,
        "config": config or {},
    }
    paths["summary"].write_text(json.dumps(summary, indent=2, default=str))
    write_report(result, paths["report"])
    if remote:
        storage.upload_dir(folder, str(out))
    return paths


def _tmpdir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="miva-eval-")
