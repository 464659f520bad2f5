"""What a component body calls around its stage: the run's config, the stage's outcome as
the local runner reports it, and KFP artifact metadata and HTML pages.

A component receives the run's configuration as a preset name plus a JSON list of
`key.path=value` overrides (the strings `--set` takes) and resolves it with
`miva.config.load_config`, so the CLI, the components and the tests share one path.

`stage_task(stage, preset, overrides)` wraps the call of one `miva.stages` function: it
yields the config, prints one `STAGE_LINE` line with the stage's key figure when it
succeeds (the local runner shows it), and on failure raises `StageError` carrying the
stage's own message, also written to `$MIVA_PIPELINE_ERRORS/<task>.error` when that folder
is set so a local run can report it after the subprocess exits. The KFP run id and task
name arrive as `$KFP_RUN_ID` / `$KFP_TASK_NAME` and tag the stage's MLflow run.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miva.config import MivaConfig, load_config
from miva.errors import ConfigError, MivaError

ERRORS_ENV = "MIVA_PIPELINE_ERRORS"
STAGE_LINE = "miva-stage-done: "  # prefix of the line a successful stage prints


class StageError(MivaError):
    """A pipeline stage failed; the message is the stage's own."""


def encode_overrides(overrides: list[str] | tuple[str, ...]) -> str:
    """`["grpo.lr=1e-5"]` -> the JSON string a pipeline parameter carries."""
    return json.dumps(list(overrides))


def parse_overrides(text: str) -> list[str]:
    """Inverse of `encode_overrides`; an empty string means no overrides."""
    if not text.strip():
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"overrides must be a JSON list of 'key=value' strings: {exc}") from exc
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"overrides must be a JSON list of 'key=value' strings, got {text!r}")
    return value


def resolve(preset: str, overrides: str) -> MivaConfig:
    return load_config(preset, parse_overrides(overrides))


class Task:
    """Handed to a component body by `stage_task`: the config and a way to report."""

    def __init__(self, cfg: MivaConfig) -> None:
        self.cfg = cfg

    def done(self, summary: str) -> None:
        """Print the stage's key figure as the one line the local runner shows."""
        print(f"{STAGE_LINE}{summary}", flush=True)


@contextmanager
def stage_task(stage: str, preset: str, overrides: str) -> Iterator[Task]:
    """Resolve the config, run the block, turn a failure into `StageError` (recorded)."""
    label = os.environ.get("KFP_TASK_NAME") or stage
    try:
        yield Task(resolve(preset, overrides))
    except MivaError as exc:
        _record(label, f"miva {stage}: {exc}")
        raise StageError(f"{label}: miva {stage}: {exc}") from None
    except Exception as exc:  # a bug: keep the traceback, but name it for the local summary
        _record(label, f"miva {stage} crashed: {type(exc).__name__}: {exc}")
        raise


def _record(task: str, message: str) -> None:
    folder = os.environ.get(ERRORS_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{task}.error").write_text(message + "\n")


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    """What the DAG decides at run time from the resolved config."""

    sft_enabled: bool
    num_nodes: int
    base_image: str
    gpu_image: str
    config_hash: str


def plan(preset: str, overrides: str, image_registry: str = "", image_tag: str = "") -> Plan:
    """Resolve the config once at the start of a run (empty registry/tag: the config's)."""
    from miva.pipeline.images import image_ref

    cfg = resolve(preset, overrides)
    registry = image_registry or cfg.pipeline.image_registry
    tag = image_tag or cfg.pipeline.image_tag
    digests = cfg.pipeline.image_digests
    return Plan(
        sft_enabled=cfg.sft.enabled,
        num_nodes=cfg.pipeline.num_nodes,
        base_image=image_ref(registry, "base", tag, digests.get("base", "")),
        gpu_image=image_ref(registry, "gpu", tag, digests.get("gpu", "")),
        config_hash=cfg.digest(),
    )


# --------------------------------------------------------------------------- metadata


def read_json(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        return {}
    try:
        value = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise MivaError(f"{p}: not valid JSON ({exc})") from exc
    return value if isinstance(value, dict) else {}


def numeric(metrics: dict[str, Any]) -> dict[str, float]:
    """The number-valued entries of a flat map (KFP Metrics and metadata take numbers)."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def dataset_metadata(path: str | Path) -> dict[str, Any]:
    """KFP artifact metadata of a MIVA dataset folder: digest, total and per-split counts."""
    from miva.data.io import read_info

    info = read_info(path)
    return {
        "digest": info.digest,
        "total": info.total,
        "schema_version": info.schema_version,
        **{f"n_{split}": sum(tasks.values()) for split, tasks in info.counts.items()},
    }


def validation_metadata(folder: str | Path) -> dict[str, Any]:
    """The verdict and row counts of `report.json`, and the clean dataset's digest and counts."""
    from miva.stages.locations import VALIDATION_REPORT, clean_dataset

    report = read_json(Path(folder) / VALIDATION_REPORT)
    meta: dict[str, Any] = {"verdict": report.get("verdict", "unknown")}
    meta.update({f"rows_{k}": v for k, v in numeric(report.get("rows", {})).items()})
    clean = Path(clean_dataset(folder))
    if (clean / "dataset.json").exists():
        meta.update({f"clean_{k}": v for k, v in dataset_metadata(clean).items()})
    return meta


def log_metrics(output: Any, metrics: dict[str, float]) -> None:
    """Every metric into a KFP `Metrics` output artifact."""
    for name, value in metrics.items():
        output.log_metric(name, value)


def copy_first(folder: str | Path, patterns: tuple[str, ...], dest: str | Path) -> Path | None:
    """Copy the first file under `folder` matching one of `patterns` (in order) to `dest`."""
    root = Path(folder)
    for pattern in patterns:
        found = sorted(p for p in root.rglob(pattern) if p.resolve() != Path(dest).resolve())
        if found:
            Path(dest).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found[0], dest)
            return found[0]
    return None


def write_text(dest: str | Path, text: str) -> None:
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    Path(dest).write_text(text)


def html_report(
    folder: str | Path, dest: str | Path, title: str, metrics: dict[str, float] | None = None
) -> None:
    """The stage's own HTML report when it wrote one, else a page of its plots and numbers.

    KFP renders an `HTML` artifact as one self-contained file, so plots go inline (base64).
    """
    import base64
    import html

    root = Path(folder)
    if copy_first(root, ("report.html", "index.html", "*.html"), dest):
        return
    rows = [
        f"<tr><td>{html.escape(name)}</td><td>{value:.6g}</td></tr>"
        for name, value in sorted((metrics or {}).items())
    ]
    figures = [
        f'<figure><img alt="{html.escape(p.name)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{html.escape(p.name)}'
        "</figcaption></figure>"
        for p in sorted(root.rglob("*.png"))
    ]
    body = "".join(figures) + (f"<table>{''.join(rows)}</table>" if rows else "")
    write_text(
        dest,
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1>{body or '<p>no plots or metrics</p>'}"
        "</body></html>",
    )
