"""What the sweep DAG's components call (`components/sweep.py`), and the local sweep run.

    plan   -> the trials (fanned out by `dsl.ParallelFor`), the SFT decision, the images
    trial  -> GRPO with the trial's overrides, then `miva eval` on the validation split,
              inside the trial's own MLflow run (a child of the sweep's parent run; the
              stage runs of the trial are its children)
    select -> the winner by the sweep metric, the summary table (printed and logged on the
              sweep's parent run), the winner's overrides for the test split and its model

After `select` the main DAG's own `evaluate` (test split, against the starting model) and
`register` run once, on the winner only.

MLflow layout: sweep parent run (the pipeline run, tagged `miva.sweep`) -> one run per
trial (`miva.run_kind` = trial; params = the trial's settings; metrics = its validation
metrics and `sweep/seconds`) -> the trial's `grpo` and `evaluate` stage runs. The final
`evaluate` and `register` stage runs hang directly under the parent.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miva.errors import ConfigError, MivaError
from miva.pipeline.stage import encode_overrides, parse_overrides
from miva.pipeline.sweep import (
    SweepSpec,
    Trial,
    TrialResult,
    check_trials,
    expand,
    format_table,
    pick_winner,
    result_from_json,
    summary_rows,
)

TAG_SWEEP = "miva.sweep"
TAG_TRIAL = "miva.trial"
SUMMARY_FILE = "sweep_summary.md"
# Stages that run once before the trials: a sweep cannot vary their settings.
SHARED_SECTIONS = ("data", "validate", "sft", "model")


@dataclass(frozen=True)
class SweepPlan:
    trials: list[dict[str, Any]]  # ParallelFor items: index, name, overrides (JSON), settings
    sft_enabled: bool
    base_image: str
    gpu_image: str


def spec_from_json(text: str) -> SweepSpec:
    return SweepSpec.model_validate_json(text)


def split_override(split: str) -> str:
    return f"eval.splits=[{split}]"


def trial_overrides(base: list[str], trial: Trial, split: str) -> list[str]:
    """The run's overrides, then the sweep's fixed ones and the trial's settings, then the
    split to evaluate on (later overrides win)."""
    return [*base, *trial.overrides, split_override(split)]


def plan_sweep(
    preset: str, overrides: str, sweep: str, image_registry: str = "", image_tag: str = ""
) -> SweepPlan:
    """Expand the sweep, check every trial's config, and decide SFT and images."""
    from miva.pipeline.stage import plan

    spec = spec_from_json(sweep)
    shared = [k for k in spec.parameters if k.split(".", 1)[0] in SHARED_SECTIONS]
    if shared:
        raise ConfigError(
            f"sweep {spec.name!r}: {shared} belong to stages that run once before the trials "
            f"({', '.join(SHARED_SECTIONS)}); sweep GRPO (train.*), agent.*, reward.* or eval.* keys"
        )
    base = parse_overrides(overrides)
    trials = expand(spec)
    check_trials(preset, base, trials)
    p = plan(preset, overrides, image_registry, image_tag)
    items = [
        {
            "index": str(t.index),
            "name": t.name,
            "overrides": encode_overrides(trial_overrides(base, t, "val")),
            "settings": json.dumps(t.settings),
        }
        for t in trials
    ]
    _tag_parent(preset, overrides, spec)
    return SweepPlan(items, p.sft_enabled, p.base_image, p.gpu_image)


def _tag_parent(preset: str, overrides: str, spec: SweepSpec) -> None:
    from mlflow import MlflowClient

    from miva.pipeline.stage import resolve
    from miva.registry.tracking import configure, resolve_parent, tracking_call

    cfg = resolve(preset, overrides)
    configure(cfg)
    parent = resolve_parent(cfg, create=True)
    client = MlflowClient()
    tracking_call(cfg, "tag the sweep run", client.set_tag, parent, TAG_SWEEP, spec.name)
    tracking_call(
        cfg, "log the sweep file", client.log_dict, parent, spec.model_dump(), "sweep/sweep.json"
    )


# ----------------------------------------------------------------------------- one trial


@contextmanager
def trial_run(cfg, index: int, settings: dict[str, Any]) -> Iterator[str]:
    """The trial's MLflow run, a child of the sweep's parent run; the stages run inside it
    are its children ($MIVA_PARENT_RUN_ID points at it meanwhile)."""
    from mlflow import MlflowClient

    from miva.registry.tracking import (
        KFP_RUN_ENV,
        PARENT_ENV,
        TAG_CONFIG,
        TAG_KFP_RUN,
        TAG_KIND,
        TAG_PARENT,
        configure,
        experiment_id,
        resolve_parent,
        tracking_call,
    )

    configure(cfg)
    parent = resolve_parent(cfg, create=True)
    client = MlflowClient()
    tags = {TAG_KIND: "trial", TAG_PARENT: parent, TAG_TRIAL: str(index), TAG_CONFIG: cfg.digest()}
    if os.environ.get(KFP_RUN_ENV):
        tags[TAG_KFP_RUN] = os.environ[KFP_RUN_ENV]
    run = tracking_call(
        cfg,
        f"create the run of trial {index}",
        client.create_run,
        experiment_id(cfg),
        run_name=f"trial-{index}",
        tags=tags,
    )
    run_id = run.info.run_id
    from mlflow.entities import Param

    params = [Param(k, json.dumps(v) if not isinstance(v, str) else v) for k, v in settings.items()]
    tracking_call(cfg, "log the trial settings", client.log_batch, run_id, params=params)
    saved = os.environ.get(PARENT_ENV)
    os.environ[PARENT_ENV] = run_id
    status = "FINISHED"
    try:
        yield run_id
    except BaseException:
        status = "FAILED"
        raise
    finally:
        if saved is None:
            os.environ.pop(PARENT_ENV, None)
        else:
            os.environ[PARENT_ENV] = saved
        tracking_call(cfg, "end the trial run", client.set_terminated, run_id, status)


def run_trial(
    preset: str,
    overrides: str,
    index: int,
    settings: dict[str, Any],
    dataset: str,
    model_out: str,
    results_out: str,
    start_model: str | None = None,
    *,
    train_image: str = "",
    dataset_uri: str = "",
    start_model_uri: str | None = None,
    model_uri: str = "",
) -> TrialResult:
    """GRPO with the trial's overrides, then `miva eval` on its validation split (no
    baseline: trials are compared with each other), timed, in the trial's MLflow run."""
    from mlflow import MlflowClient

    from miva.pipeline import stage
    from miva.registry.tracking import metric_key, tracking_call

    cfg = stage.resolve(preset, overrides)
    t0 = time.perf_counter()
    with trial_run(cfg, index, settings) as run_id:
        if cfg.pipeline.num_nodes > 1:
            from miva.pipeline.trainjob import train_distributed

            train_distributed(
                cfg,
                preset=preset,
                overrides=overrides,
                image=train_image,
                dataset_uri=dataset_uri,
                start_model_uri=start_model_uri,
                out_uri=model_uri,
                local_out=model_out,
            )
        else:
            args = ["--dataset", dataset, "--out", model_out]
            if start_model is not None:
                args += ["--model", start_model]
            stage.run_stage("train", preset, overrides, args)
        eval_args = ["--model", model_out, "--dataset", dataset, "--out", results_out]
        stage.run_stage("eval", preset, overrides, eval_args, datasets=[(dataset, "eval")])
        seconds = time.perf_counter() - t0
        metrics = stage.eval_metrics(results_out)
        logged = {metric_key(k): v for k, v in metrics.items()}
        logged["sweep/seconds"] = seconds
        client = MlflowClient()
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in logged.items()]
        tracking_call(cfg, "log the trial metrics", client.log_batch, run_id, metrics=batch)
    return TrialResult(index, settings, metrics, seconds, model_uri or model_out)


# ----------------------------------------------------------------------------- selection


@dataclass
class Selection:
    winner: TrialResult
    winner_overrides: str  # JSON list: the winner's settings, evaluated on the test split
    table: str  # Markdown summary of all trials


def select(preset: str, overrides: str, sweep: str, results: list[str]) -> Selection:
    """Pick the winner, print the summary table and log it on the sweep's parent run."""
    spec = spec_from_json(sweep)
    trials = {t.index: t for t in expand(spec)}
    parsed = [result_from_json(r) for r in results]
    if len(parsed) != len(trials):
        raise MivaError(
            f"sweep {spec.name!r}: {len(parsed)} trial results for {len(trials)} trials"
        )
    winner = pick_winner(spec, parsed)
    rows = summary_rows(spec, parsed, winner.index)
    table = format_table(rows)
    print(f"sweep {spec.name}: {len(parsed)} trials, {spec.goal} {spec.metric}\n\n{table}\n")
    print(f"winner: trial-{winner.index} {winner.settings}")
    base = parse_overrides(overrides)
    test = encode_overrides(trial_overrides(base, trials[winner.index], "test"))
    _log_summary(preset, overrides, spec, rows, table, winner)
    return Selection(winner, test, table)


def _log_summary(preset, overrides, spec: SweepSpec, rows, table: str, winner: TrialResult):
    from mlflow import MlflowClient

    from miva.pipeline.stage import resolve
    from miva.registry.tracking import configure, metric_key, resolve_parent, tracking_call

    cfg = resolve(preset, overrides)
    configure(cfg)
    parent = resolve_parent(cfg, create=True)
    client = MlflowClient()
    tracking_call(
        cfg, "log the sweep summary", client.log_text, parent, table, f"sweep/{SUMMARY_FILE}"
    )
    tracking_call(cfg, "log the sweep trials", client.log_dict, parent, rows, "sweep/trials.json")
    value = winner.metrics.get(spec.metric)
    tracking_call(
        cfg, "tag the winner", client.set_tag, parent, "miva.sweep.winner", f"trial-{winner.index}"
    )
    if value is not None:
        tracking_call(
            cfg,
            "log the winner's metric",
            client.log_metric,
            parent,
            metric_key(f"sweep/winner/{spec.metric}"),
            float(value),
        )
    tracking_call(
        cfg, "log the trial count", client.log_metric, parent, "sweep/trials", float(len(rows))
    )


# ----------------------------------------------------------------------------- local run


def run_sweep_local(cfg, preset: str, overrides: list[str], spec: SweepSpec, pipeline_root=None):
    """The sweep DAG through kfp.local (like `miva pipeline local`); returns the run folder
    and the summary table the select step wrote."""
    from miva.pipeline.dag import build_sweep
    from miva.pipeline.local import run_local

    pipeline = build_sweep(cfg, preset, overrides, spec)
    summary = run_local(cfg, preset, overrides, pipeline_root=pipeline_root, pipeline=pipeline)
    tables = sorted(Path(summary.run_dir).rglob("summary"), key=lambda p: p.stat().st_mtime)
    summary.sweep_table = tables[-1].read_text() if tables else ""
    return summary
