"""What a pipeline component body calls: one `miva` stage with KFP context, and its outputs.

A component receives the run's configuration as a preset name plus a JSON list of
`key.path=value` overrides (the same strings `--set` takes) and resolves it here with
`miva.config.load_config`, so the CLI, the components and the tests share one path.

`run_stage` puts the KFP run id and task name into `$KFP_RUN_ID` / `$KFP_TASK_NAME`
(`miva.registry.tracking.stage_run` tags the stage's MLflow run with them) and calls the
stage's CLI handler in-process. A failure raises `StageError` carrying the stage's own
message; when `$MIVA_PIPELINE_ERRORS` names a folder, the message is also written there
as `<task>.error` so a local run can report it after the subprocess exits.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miva.config import MivaConfig, load_config
from miva.errors import ConfigError, MivaError

ERRORS_ENV = "MIVA_PIPELINE_ERRORS"


class StageError(MivaError):
    """A pipeline stage failed; the message is the stage's own."""


def encode_overrides(overrides: list[str] | tuple[str, ...]) -> str:
    """`["train.lr=1e-5"]` -> the JSON string a pipeline parameter carries."""
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
    return Plan(
        sft_enabled=cfg.sft.enabled,
        num_nodes=cfg.pipeline.num_nodes,
        base_image=image_ref(registry, "base", tag),
        gpu_image=image_ref(registry, "gpu", tag),
        config_hash=cfg.digest(),
    )


def stage_argv(command: str, preset: str, overrides: str, args: list[str]) -> list[str]:
    argv = [command, "-c", preset]
    for item in parse_overrides(overrides):
        argv += ["--set", item]
    return argv + list(args)


# Stages whose CLI handler opens its own MLflow stage run (miva.registry.tracking.stage_run);
# for the others run_stage opens it, so every stage has one run tagged with the KFP ids.
OWN_MLFLOW_RUN = {"sft", "train", "register"}

STAGE_COMMANDS = {"synth", "validate", "sft", "train", "eval", "register"}

# CLI command -> the stage name MLflow runs use (DESIGN.md stage names).
STAGE_NAMES = {"synth": "synthesize", "train": "grpo", "eval": "evaluate"}


def run_stage(
    command: str,
    preset: str,
    overrides: str,
    args: list[str],
    *,
    datasets: list[tuple[str, str]] = (),
    metrics: Callable[[], dict[str, float]] | None = None,
) -> dict[str, float]:
    """Run `miva <command> -c PRESET --set ... ARGS` in this process; raise on failure.

    The KFP run id and task name come from `$KFP_RUN_ID` / `$KFP_TASK_NAME` (the DAG sets
    them on every task). Inside the stage's MLflow run (tagged with both) it also
    records `datasets` ((path, context) pairs) as run inputs and logs what `metrics()`
    returns after the stage succeeded; those metrics are returned for KFP Metrics.
    """
    from miva.cli import COMMANDS, build_parser

    argv = stage_argv(command, preset, overrides, args)
    label = os.environ.get("KFP_TASK_NAME") or command
    try:
        parsed = build_parser().parse_args(argv)
        cfg = load_config(parsed.config, parsed.overrides)
        with _stage_run(cfg, command):
            rc = int(COMMANDS[command][2](parsed, cfg) or 0)
            if rc:
                raise StageError(f"`miva {command}` exited with status {rc}")
            return _log_outputs(datasets, metrics)
    except SystemExit as exc:  # argparse rejected the arguments
        _record(label, f"`miva {' '.join(argv)}`: invalid arguments (exit {exc.code})")
        raise StageError(f"`miva {command}`: invalid arguments {argv}") from None
    except MivaError as exc:
        _record(label, f"miva {command}: {exc}")
        raise StageError(f"{label}: miva {command}: {exc}") from None
    except Exception as exc:  # a bug: keep the traceback, but name it for the local summary
        _record(label, f"miva {command} crashed: {type(exc).__name__}: {exc}")
        raise


@contextmanager
def _stage_run(cfg: MivaConfig, command: str) -> Iterator[None]:
    if command in OWN_MLFLOW_RUN or command not in STAGE_COMMANDS:
        yield
        return
    from miva.registry.tracking import stage_run

    with stage_run(cfg, STAGE_NAMES.get(command, command)):
        yield


def _log_outputs(
    datasets: list[tuple[str, str]], metrics: Callable[[], dict[str, float]] | None
) -> dict[str, float]:
    values = metrics() if metrics is not None else {}
    if not datasets and not values:
        return values
    import mlflow

    if mlflow.active_run() is None:
        return values
    from miva.registry.tracking import log_dataset, metric_key

    for path, context in datasets:
        log_dataset(path, context=context)
    if values:
        mlflow.log_metrics({metric_key(k): v for k, v in values.items()})
    return values


def _record(task: str, message: str) -> None:
    folder = os.environ.get(ERRORS_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{task}.error").write_text(message + "\n")


# --------------------------------------------------------------------------- outputs


def read_json(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        return {}
    try:
        value = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise MivaError(f"{p}: not valid JSON ({exc})") from exc
    return value if isinstance(value, dict) else {}


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


def numeric(metrics: dict[str, Any]) -> dict[str, float]:
    """The float-valued entries of a flat metrics map (KFP Metrics take numbers only)."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


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


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a/b": 1}` (metric names are `/`-namespaced)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, prefix=f"{name}/"))
        else:
            out[name] = value
    return out


# --------------------------------------------------------------------------- per stage

VALIDATION_REPORT = "report.json"
EVAL_METRICS = "metrics.json"


def clean_dataset(validated: str) -> str:
    """The clean dataset inside a `miva validate` output folder (a path or an s3:// URI)."""
    return f"{str(validated).rstrip('/')}/clean"


def validation_metadata(folder: str | Path) -> dict[str, Any]:
    """The verdict and row counts of `report.json`, and the clean dataset's digest and counts."""
    report = read_json(Path(folder) / VALIDATION_REPORT)
    meta: dict[str, Any] = {"verdict": report.get("verdict", "unknown")}
    meta.update({f"rows_{k}": v for k, v in numeric(report.get("rows", {})).items()})
    clean = Path(clean_dataset(str(folder)))
    if (clean / "dataset.json").exists():
        meta.update({f"clean_{k}": v for k, v in dataset_metadata(clean).items()})
    return meta


def validation_metrics(folder: str | Path) -> dict[str, float]:
    """`validate/rows/...` and `validate/quarantine/<rule>` counts for KFP Metrics."""
    report = read_json(Path(folder) / VALIDATION_REPORT)
    out = {f"validate/rows/{k}": v for k, v in numeric(report.get("rows", {})).items()}
    out.update(
        {
            f"validate/quarantine/{k}": v
            for k, v in numeric(report.get("quarantine_by_rule", {})).items()
        }
    )
    return out


def training_metrics(folder: str | Path) -> dict[str, float]:
    """Final numbers of a training run: the last row of each `*metrics*.jsonl` (one row per
    step, as `miva.rl.metrics.MetricsLogger` writes) and any `*metrics*.json` summary."""
    out: dict[str, float] = {}
    for path in sorted(Path(folder).glob("*metrics*.jsonl")):
        rows = [line for line in path.read_text().splitlines() if line.strip()]
        if rows:
            try:
                last = json.loads(rows[-1])
            except json.JSONDecodeError as exc:
                raise MivaError(f"{path}: last line is not JSON ({exc})") from exc
            out.update(numeric(flatten(last)))
    for path in sorted(Path(folder).glob("*metrics*.json")):
        out.update(numeric(flatten(read_json(path))))
    return out


def eval_metrics_file(folder: str | Path) -> str:
    path = Path(folder) / EVAL_METRICS
    if not path.exists():
        raise MivaError(f"{path}: `miva eval` wrote no {EVAL_METRICS} into {folder}")
    return str(path)


def eval_metrics(folder: str | Path) -> dict[str, float]:
    return numeric(flatten(read_json(Path(folder) / EVAL_METRICS)))


def baseline_args(preset: str, overrides: str) -> list[str]:
    """Compare against `eval.baseline`, else against the model the run started from."""
    cfg = resolve(preset, overrides)
    return ["--baseline", cfg.eval.baseline or cfg.model.name_or_path]


def html_report(folder: str | Path, dest: str | Path, title: str) -> None:
    """The stage's own HTML report when it wrote one, else a page of its plots and numbers.

    KFP renders an `HTML` artifact as one self-contained file, so plots go inline (base64).
    """
    import base64
    import html

    root = Path(folder)
    if copy_first(root, ("report.html", "index.html", "*.html"), dest):
        return
    rows = []
    for path in sorted(root.glob("*.json")):
        for name, value in numeric(flatten(read_json(path))).items():
            rows.append(f"<tr><td>{html.escape(name)}</td><td>{value:.6g}</td></tr>")
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


class _Tee:
    def __init__(self, stream):
        import io

        self.stream, self.buffer = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        return self.buffer.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def getvalue(self) -> str:
        return self.buffer.getvalue()


class capture_stdout:
    """Keep printing to stdout and remember what was printed."""

    def __enter__(self) -> _Tee:
        import sys

        self._saved = sys.stdout
        self._tee = _Tee(sys.stdout)
        sys.stdout = self._tee
        return self._tee

    def __exit__(self, *exc: object) -> None:
        import sys

        sys.stdout = self._saved


def registry_decision(printed: str, dest: str | Path) -> str:
    """The registry decision as Markdown: what `miva register` printed (its promotion summary)."""
    text = printed.strip() or "`miva register` printed no decision"
    write_text(dest, text + "\n")
    return text


def end_pipeline_run(preset: str, overrides: str) -> None:
    """Close the MLflow parent run of this KFP run (the last stage calls this)."""
    from miva.registry.tracking import end_pipeline_run as end

    end(resolve(preset, overrides))
