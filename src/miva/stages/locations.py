"""Where a stage reads and writes when the caller names no location: the config's outputs,
chained in DAG order (validate's clean dataset feeds sft, grpo and evaluate; grpo starts
from the SFT model when SFT ran)."""

from __future__ import annotations

from pathlib import Path

from miva import storage
from miva.config import MivaConfig

VALIDATION_REPORT = "report.json"
EVAL_METRICS = "metrics.json"


def clean_dataset(validated: str | Path) -> str:
    """The clean dataset inside a validate output folder (a path or an s3:// URI)."""
    return f"{str(validated).rstrip('/')}/clean"


def training_dataset(cfg: MivaConfig) -> str:
    """The dataset sft, grpo and evaluate read by default: validate's clean rows."""
    return clean_dataset(cfg.validate_.output)


def start_model(cfg: MivaConfig) -> str:
    """The model grpo starts from: the SFT output when SFT is on and has written a model,
    else `model.name_or_path`."""
    out = cfg.sft.output
    ran = storage.is_remote(out) or (Path(out) / "config.json").exists()
    return out if cfg.sft.enabled and ran else cfg.model.name_or_path


def eval_metrics_file(results: str | Path) -> str:
    """metrics.json inside an evaluate output folder."""
    return storage.join(results, EVAL_METRICS)
