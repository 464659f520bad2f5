"""`miva pipeline local`: the whole DAG on this machine through kfp.local.

Every stage runs as a subprocess of the installed `miva` (`SubprocessRunner(use_venv=False)`);
kfp.local ignores images, GPU requests and Kubernetes settings, so the same DAG that a
cluster runs runs here. Artifacts land under `<workdir>/pipeline/<run>/<task>/`; MLflow
uses the config's tracking URI (a SQLite file under `.miva/` by default).

The console stays quiet: one line as each task starts and one as it ends, with its time
and key figure (`runlog.RunLog`); kfp.local's own output (executor JSON, each stage's log)
goes to `<run>/logs/`: `executor.log` for everything, `<task>.log` per task.

A failing stage stops the run: the error names the stage and carries the stage's own
message, and the artifacts and logs of the stages before it stay where they are.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
import warnings
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from miva.config import MivaConfig
from miva.errors import MivaError
from miva.pipeline.artifacts import ERRORS_ENV
from miva.pipeline.runlog import RunLog
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
    echo: Callable[[str], None] | None = None,
    build: Callable[[], Any] | None = None,
) -> RunSummary:
    """Run the DAG (`build()` makes another pipeline function, e.g. the sweep DAG);
    `echo` gets the console lines (default: this process's stdout, which kfp.local's own
    output never reaches)."""
    from kfp import local

    from miva.pipeline.dag import build_pipeline
    from miva.registry.tracking import pipeline_run

    root = Path(pipeline_root or Path(cfg.workdir) / "pipeline").resolve()
    root.mkdir(parents=True, exist_ok=True)
    errors = root / ".errors"
    for old in errors.glob("*.error"):
        old.unlink()
    before = _run_dirs(root)
    # On a cluster the pods get the run id from the backend; here every stage subprocess
    # inherits this one (and the task name from the task's environment).
    run_id = f"local-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    logs = root / f".logs-{run_id}"
    echo = echo or _console(sys.stdout)
    echo(f"MIVA local run {run_id} (kfp.local, preset {preset}): one line per stage start and end")
    log = RunLog(logs, echo)
    saved = {k: os.environ.get(k) for k in (ERRORS_ENV, "KFP_RUN_ID")}
    os.environ[ERRORS_ENV] = str(errors)
    os.environ["KFP_RUN_ID"] = run_id
    failure: Exception | None = None
    try:
        with redirect_stdout(log), redirect_stderr(log), warnings.catch_warnings():
            # kfp.local warns that the stage images are not Python images: they are not used.
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            # ... and that GPU requests do nothing here: on this machine they should not.
            warnings.filterwarnings(
                "ignore", message=".*have no effect in the current local runner.*"
            )
            pipeline = build() if build else build_pipeline(cfg, preset, overrides)
            local.init(
                runner=local.SubprocessRunner(use_venv=False),
                pipeline_root=str(root),
                raise_on_error=True,
            )
            # One MLflow parent run for the whole local run; each stage's run joins it.
            with pipeline_run(cfg, run_id):
                pipeline()
    except RuntimeError as exc:
        failure = exc
    finally:
        log.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    new = sorted(_run_dirs(root) - before, key=lambda p: p.stat().st_mtime)
    run_dir = new[-1] if new else None
    logs = _keep_logs(logs, run_dir)
    if failure is not None:
        raise _explain(failure, errors, run_dir, logs)
    if run_dir is None:
        raise LocalRunError(f"the local pipeline finished but wrote no run folder under {root}")
    summary = summarize(run_dir, mlflow_db=_mlflow_db(cfg))
    summary.run_id = run_id
    summary.logs = logs
    return summary


def _console(stream) -> Callable[[str], None]:
    """Write straight to `stream`: print() would go where kfp.local redirects it."""

    def echo(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    return echo


def _keep_logs(logs: Path, run_dir: Path | None) -> Path:
    """Move the logs into the run folder (`<run>/logs/`) once kfp.local has made it."""
    if run_dir is None or not logs.exists():
        return logs
    dest = run_dir / "logs"
    shutil.move(str(logs), dest)
    return dest


def _explain(exc: Exception, errors: Path, run_dir: Path | None, logs: Path) -> LocalRunError:
    where = f"; artifacts of the earlier stages are in {run_dir}" if run_dir else ""
    messages = sorted(errors.glob("*.error"), key=lambda p: p.stat().st_mtime)
    if messages:
        task = messages[-1].stem
        return LocalRunError(
            f"stage {task} failed: {messages[-1].read_text().strip()}{where}; "
            f"its log: {logs / (task + '.log')}"
        )
    return LocalRunError(f"the local pipeline failed: {exc}{where}; logs in {logs}")


def run_sweep_local(
    cfg: MivaConfig,
    preset: str,
    overrides: list[str],
    spec: Any,
    pipeline_root: str | Path | None = None,
    echo: Callable[[str], None] | None = None,
) -> RunSummary:
    """The sweep DAG of `spec` (a `miva.pipeline.sweep.SweepSpec`) through kfp.local; the
    summary also carries the trials table the select step wrote."""
    from miva.pipeline.sweep_dag import build_sweep_pipeline

    summary = run_local(
        cfg,
        preset,
        overrides,
        pipeline_root=pipeline_root,
        echo=echo,
        build=lambda: build_sweep_pipeline(cfg, preset, overrides, spec),
    )
    tables = sorted(Path(summary.run_dir).rglob("summary"), key=lambda p: p.stat().st_mtime)
    summary.sweep_table = tables[-1].read_text().strip() if tables else ""
    return summary
