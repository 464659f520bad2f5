"""`miva pipeline local`: the whole DAG on this machine through kfp.local.

Every stage runs as a subprocess of the installed `miva` (`SubprocessRunner(use_venv=False)`);
kfp.local ignores images, GPU requests and Kubernetes settings, so the same DAG that a
cluster runs runs here. Artifacts land under `<workdir>/pipeline/<run>/<task>/`; MLflow
uses the config's tracking URI (a SQLite file under `.miva/` by default).

A failing stage stops the run: the error names the stage and carries the stage's own
message, and the artifacts of the stages before it stay where they are.
"""

from __future__ import annotations

import os
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path

from miva.config import MivaConfig
from miva.errors import MivaError
from miva.pipeline.stage import ERRORS_ENV
from miva.pipeline.summary import RunSummary, summarize


class LocalRunError(MivaError):
    """A stage of the local run failed."""


def _run_dirs(root: Path) -> set[Path]:
    return {p for p in root.iterdir() if p.is_dir() and p.name.startswith("miva-")}


def _mlflow_db(cfg: MivaConfig) -> Path | None:
    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.registry.tracking_uri
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def run_local(
    cfg: MivaConfig,
    preset: str,
    overrides: list[str],
    pipeline_root: str | Path | None = None,
    pipeline=None,
) -> RunSummary:
    """Run `pipeline` (default: the main DAG built from `cfg`) through kfp.local."""
    from kfp import local

    from miva.pipeline.dag import build
    from miva.registry.tracking import pipeline_run

    root = Path(pipeline_root or Path(cfg.workdir) / "pipeline").resolve()
    root.mkdir(parents=True, exist_ok=True)
    errors = root / ".errors"
    for old in errors.glob("*.error"):
        old.unlink()
    before = _run_dirs(root)
    pipeline = pipeline or build(cfg, preset, overrides)
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True
    )
    # On a cluster the pods get the run id from the backend; here every stage subprocess
    # inherits this one (and the task name from the task's environment).
    run_id = f"local-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    saved = {k: os.environ.get(k) for k in (ERRORS_ENV, "KFP_RUN_ID")}
    os.environ[ERRORS_ENV] = str(errors)
    os.environ["KFP_RUN_ID"] = run_id
    try:
        # One MLflow parent run for the whole local run; each stage's run joins it.
        with pipeline_run(cfg, run_id), warnings.catch_warnings():
            # kfp.local warns that the stage images are not Python images: they are not used.
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            # ... and that GPU requests do nothing here: on this machine they should not.
            warnings.filterwarnings(
                "ignore", message=".*have no effect in the current local runner.*"
            )
            pipeline()
    except RuntimeError as exc:
        new = sorted(_run_dirs(root) - before)
        where = f"; artifacts of the earlier stages are in {new[-1]}" if new else ""
        messages = sorted(errors.glob("*.error"), key=lambda p: p.stat().st_mtime)
        if messages:
            task = messages[-1].stem
            raise LocalRunError(
                f"stage {task} failed: {messages[-1].read_text().strip()}{where}"
            ) from None
        raise LocalRunError(f"the local pipeline failed: {exc}{where}") from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    new = sorted(_run_dirs(root) - before, key=lambda p: p.stat().st_mtime)
    if not new:
        raise LocalRunError(f"the local pipeline finished but wrote no run folder under {root}")
    summary = summarize(new[-1], mlflow_db=_mlflow_db(cfg))
    summary.run_id = run_id
    return summary
