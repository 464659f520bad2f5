"""Load the DAG from the repository's `pipelines/` (it sits next to `src/`, not in the package)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from miva.config import MivaConfig
from miva.errors import MivaError

REPO_ROOT = Path(os.environ.get("MIVA_REPO_ROOT", Path(__file__).resolve().parents[3]))


def _checkout() -> None:
    if not (REPO_ROOT / "pipelines" / "dag.py").exists():
        raise MivaError(
            f"{REPO_ROOT}/pipelines/dag.py not found: `miva pipeline` runs from a source checkout "
            "(set MIVA_REPO_ROOT to the repository root)"
        )
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))


def build(cfg: MivaConfig, preset: str, overrides: list[str]):
    """`pipelines.dag.build_pipeline(cfg, preset, overrides)`, importing it from the checkout."""
    _checkout()
    from pipelines.dag import build_pipeline

    return build_pipeline(cfg, preset, overrides)


def build_sweep(cfg: MivaConfig, preset: str, overrides: list[str], spec):
    """`pipelines.sweep.build_sweep_pipeline(...)`: the sweep DAG (miva.pipeline.sweep)."""
    _checkout()
    from pipelines.sweep import build_sweep_pipeline

    return build_sweep_pipeline(cfg, preset, overrides, spec)
