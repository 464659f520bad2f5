"""What the sweep DAG's components call (`components/sweep.py`), and the local sweep run.

    plan   -> the trials (fanned out by `dsl.ParallelFor`), the SFT decision, the images
    trial  -> GRPO with the trial's overrides, then `miva eval` on the validation split,
              inside the trial's own MLflow run (a child of the sweep's parent run; the
              stage runs of the trial are its children)
    select -> the winner by the sweep metric, the summary table (printed and logged on the
              sweep's parent run), the winner's overrides for the test split and its model

After `select` the main DAG's own `evaluate` (test split, against the starting model) and
`register` run once, on the winner only. `miva.pipeline.local.run_sweep_local` runs the
whole sweep DAG through kfp.local.

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
from typing import Any

from miva.errors import ConfigError, MivaError
from miva.pipeline.artifacts import encode_overrides, parse_overrides
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
SHARED_SECTIONS = ("synthesize", "validate", "sft", "model")


@dataclass(frozen=True)
class SweepPlan:
    trials: list[dict[str, Any]]  # ParallelFor items: index, name, overrides (JSON), settings
    sft_enabled: bool
    base_image: str
    gpu_image: str


def spec_from_json(text: str) -> SweepSpec:
    return SweepSpec.model_validate_json(text)


def split_override(split: str) -> str:
    return f"evaluate.splits=[{split}]"


def trial_overrides(base: list[str], trial: Trial, split: str) -> list[str]:
    """The run's overrides, then the sweep's fixed ones and the trial's settings, then the
    split to evaluate on (later overrides win)."""
    return [*base, *trial.overrides, split_override(split)]


def plan_sweep(
    preset: str, overrides: str, sweep: str, image_registry: str = "", image_tag: str = ""
) -> SweepPlan:
    """Expand the sweep, check every trial's config, and decide SFT and images."""
    from miva.pipeline.artifacts import plan

    spec = spec_from_json(sweep)
    shared = [k for k in spec.parameters if k.split(".", 1)[0] in SHARED_SECTIONS]
    if shared:
        raise ConfigError(
            f"sweep {spec.name!r}: {shared} belong to stages that run once before the trials "
            f"({', '.join(SHARED_SECTIONS)}); sweep grpo.*, agent.*, reward.* or evaluate.* keys"
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

    from miva.pipeline.artifacts import resolve
    from miva.registry.tracking import configure, resolve_parent, tracking_call

    cfg = resolve(preset, overrides)
    if not cfg.registry.track_runs:
        return
    configure(cfg)
    parent = resolve_parent(cfg, create=True)
    client = MlflowClient()
    tracking_call(cfg, "tag the sweep run", client.set_tag, parent, TAG_SWEEP, spec.name)
    tracking_call(
        cfg, "log the sweep file", client.log_dict, parent, spec.model_dump(), "sweep/sweep.json"
    )


# ----------------------------------------------------------------------------- one trial


@contextmanager
def trial_run(cfg, index: int, settings: dict[str, Any]) -> Iterator[str | None]:
    """The trial's MLflow run, a child of the sweep's parent run; the stages run inside it
    are its children ($MIVA_PARENT_RUN_ID points at it meanwhile). Yields None when
    `registry.track_runs` is off."""
    if not cfg.registry.track_runs:
        yield None
        return
    from mlflow import MlflowClient
    from mlflow.entities import Param

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
    params = [Param(k, v if isinstance(v, str) else json.dumps(v)) for k, v in settings.items()]
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
    cfg,
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
    """The grpo stage with the trial's config `cfg` (a TrainJob when multi-node), then the
    evaluate stage on its validation split without a baseline (trials are compared with
    each other), timed, in the trial's MLflow run."""
    from miva import stages

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
            stages.grpo(cfg, dataset, model_out, start_model, progress=False)
        scored = stages.evaluate(
            cfg, model_out, results_out, dataset=dataset, benchmarks={}, baseline=None
        )
        seconds = time.perf_counter() - t0
        metrics = dict(scored.metrics)
        if run_id is not None:
            _log_trial_metrics(cfg, run_id, {**metrics, "sweep/seconds": seconds})
    return TrialResult(index, settings, metrics, seconds, model_uri or model_out)


def _log_trial_metrics(cfg, run_id: str, metrics: dict[str, float]) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from miva.metric_names import metric_key
    from miva.registry.tracking import tracking_call

    now = int(time.time() * 1000)
    batch = [Metric(metric_key(k), float(v), now, 0) for k, v in metrics.items()]
    tracking_call(cfg, "log the trial metrics", MlflowClient().log_batch, run_id, metrics=batch)


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

    from miva.pipeline.artifacts import resolve
    from miva.registry.tracking import configure, resolve_parent, tracking_call

    cfg = resolve(preset, overrides)
    if not cfg.registry.track_runs:
        return
    configure(cfg)
    parent = resolve_parent(cfg, create=True)
    client = MlflowClient()
    tracking_call(
        cfg, "log the sweep summary", client.log_text, parent, table, f"sweep/{SUMMARY_FILE}"
    )
    tracking_call(cfg, "log the sweep trials", client.log_dict, parent, rows, "sweep/trials.json")
    tags = {"miva.sweep.winner": f"trial-{winner.index}", "miva.sweep.metric": spec.metric}
    for key, text in tags.items():
        tracking_call(cfg, "tag the winner", client.set_tag, parent, key, text)
    tracking_call(
        cfg,
        "log the winner's metric",
        client.log_metric,
        parent,
        "sweep/best",
        float(winner.metrics[spec.metric]),
    )
    tracking_call(
        cfg, "log the trial count", client.log_metric, parent, "sweep/trials", float(len(rows))
    )
