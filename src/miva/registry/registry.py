"""Register model versions, apply the promotion policy, and move aliases by hand.

`register_model` does, in order:
1. in a child run ``register`` of the pipeline run: log the metrics, the training
   dataset as an input, the HTML report, and the model (pyfunc, see `model_logging`).
   Only a completely uploaded model is registered: a failed or interrupted upload raises
   before any version exists, and re-running redoes it.
2. create a version with tags ``miva.dataset_digest``, ``miva.eval_digest``,
   ``miva.metric.<name>``, ``miva.parent_run_id``, ``miva.config_hash``; the version number
   comes from the registry's database, so racing registrations never lose a version.
3. set alias ``challenger`` to it.
4. under the promotion lock, read the ``champion``, apply `policy.decide`, move
   ``champion`` when it wins, and record the decision: version tags ``miva.decision`` and
   ``miva.decision_reasons``, the version description, ``promotion.md`` in the run.

The promotion lock (`miva.registry.lock`) is a registered model named
``<model>.promotion-lock``: creating a registered model is atomic in every MLflow backend
(unique name), so only one registration decides at a time and the aliases end consistent.
A lock whose holder died (its process is gone, or its heartbeat stopped) is broken safely.
Every alias move (register, promote, rollback) pushes or pops the registered-model tag
``miva.champion_history`` so `rollback` can walk back.

After the decision, the MLflow traces the pipeline's evaluation recorded are tagged with
the new version (`miva.eval.traces.link_traces_to_version`), and when
``registry.deploy.on_promotion`` is on and this version became the champion, its KServe
InferenceService is rendered (and applied with ``registry.deploy.apply``) by
`miva.registry.deploy.deploy`. Neither can fail a registration: problems are logged.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miva.errors import MivaError
from miva.metric_names import metric_key
from miva.registry.lock import promotion_lock
from miva.registry.policy import Decision, decide
from miva.registry.tracking import (
    TAG_CONFIG,
    TrackingError,
    configure,
    log_dataset,
    log_report,
    stage_run,
    tracking_call,
)

CHAMPION, CHALLENGER = "champion", "challenger"
TAG_DECISION = "miva.decision"
TAG_REASONS = "miva.decision_reasons"
TAG_EVAL = "miva.eval_digest"
TAG_DATASET = "miva.dataset_digest"
TAG_PARENT_RUN = "miva.parent_run_id"
TAG_HISTORY = "miva.champion_history"
METRIC_PREFIX = "miva.metric."
log = logging.getLogger(__name__)


@dataclass
class Registration:
    name: str
    version: str
    decision: Decision
    champion: str | None
    run_id: str
    summary: str  # the promotion decision as Markdown (promotion.md)
    deployed: str | None = None  # manifest written because the champion changed

    @property
    def headline(self) -> str:
        """`registered miva-agent v3: promoted; champion is v3` (the pipeline summary's line)."""
        return (
            f"registered {self.name} v{self.version}: {self.decision.outcome}; "
            f"champion is v{self.champion}"
        )


# ---------------------------------------------------------------------------- inputs


def load_metrics(
    path: str | Path, primary: str | None = None, eval_digest: str | None = None
) -> tuple[dict[str, float], str | None]:
    """Metrics and the eval-set digest from `miva evaluate`'s metrics.json (local or s3://).

    Accepted shapes: the flat ``name -> float`` map, or ``{"metrics": {...}, ...}``.
    The digest, first found wins: the `eval_digest` argument; the string under
    ``eval/<set>/digest`` for the set of the primary metric (``eval/<set>/...``); the only
    ``.../digest`` string; an ``eval_digest`` key in the file; the same key in
    ``eval.json`` or ``report.json`` next to the file. Non-numeric values are not metrics.
    """
    from miva import storage

    if not storage.exists(path):
        raise MivaError(f"{path}: no metrics file; `miva evaluate` writes it")
    try:
        raw = json.loads(storage.read_text(path))
    except json.JSONDecodeError as exc:
        raise MivaError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise MivaError(f"{path}: expected a JSON object of metric name -> number")
    body = raw["metrics"] if isinstance(raw.get("metrics"), dict) else raw
    metrics: dict[str, float] = {}
    digests: dict[str, str] = {}
    for key, value in body.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            metrics[key] = float(value)
        elif isinstance(value, str) and key.endswith("/digest"):
            digests[key] = value
    if eval_digest:
        return metrics, eval_digest
    if primary and primary.startswith("eval/"):
        key = "/".join(primary.split("/")[:2]) + "/digest"
        if key in digests:
            return metrics, digests[key]
    if len(digests) == 1:
        return metrics, next(iter(digests.values()))
    for source in (raw, body):
        if isinstance(source.get("eval_digest"), str):
            return metrics, source["eval_digest"]
    for sidecar in ("eval.json", "report.json"):
        candidate = storage.join(_parent(path), sidecar)
        if storage.exists(candidate):
            try:
                side = json.loads(storage.read_text(candidate))
            except json.JSONDecodeError:
                continue
            if isinstance(side, dict) and isinstance(side.get("eval_digest"), str):
                return metrics, side["eval_digest"]
    return metrics, None


def _parent(path: str | Path) -> str:
    text = str(path).rstrip("/")
    return text.rsplit("/", 1)[0] if "/" in text else "."


def localize_model(model: str | Path) -> Path:
    """A local `save_pretrained` folder for `model` (downloading an s3:// URI)."""
    from miva import storage

    folder = storage.localize(model, "models")
    if not (folder / "config.json").is_file():
        raise MivaError(f"{model}: not a save_pretrained model folder (no config.json)")
    return folder


# ---------------------------------------------------------------------------- registry reads


def _client():
    from mlflow import MlflowClient

    return MlflowClient()


def _is_code(exc: Exception, *codes: str) -> bool:
    return any(c in str(getattr(exc, "error_code", "")) or c in str(exc) for c in codes)


def version_by_alias(cfg, alias: str):
    from mlflow.exceptions import MlflowException

    name = cfg.registry.model_name
    try:
        return _client().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if _is_code(exc, "RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "not found", "does not exist"):
            return None
        raise TrackingError(f"cannot read alias {alias!r} of {name!r}: {exc}") from exc


def version_metrics(mv) -> dict[str, float]:
    out = {}
    for key, value in (mv.tags or {}).items():
        if key.startswith(METRIC_PREFIX):
            try:
                out[key[len(METRIC_PREFIX) :]] = float(value)
            except ValueError:
                continue
    return out


def _history(cfg) -> list[str]:
    from mlflow.exceptions import MlflowException

    try:
        rm = _client().get_registered_model(cfg.registry.model_name)
    except MlflowException:
        return []
    return json.loads((rm.tags or {}).get(TAG_HISTORY, "[]"))


def _set_champion(cfg, version: str, history: list[str]) -> None:
    client = _client()
    name = cfg.registry.model_name
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_registered_model_tag(name, TAG_HISTORY, json.dumps(history[-200:]))


# ---------------------------------------------------------------------------- register


def summary_markdown(
    cfg, version: str, decision: Decision, metrics: dict[str, float], eval_digest, champion
) -> str:
    reg = cfg.registry
    lines = [
        f"# Promotion decision: {reg.model_name} v{version}",
        "",
        f"**{decision.outcome}**",
        "",
        f"- primary metric: `{reg.primary_metric}` (margin {reg.margin:g})",
        f"- guards: {', '.join(f'`{k}` (tolerance {v:g})' for k, v in reg.guards.items()) or 'none'}",
        f"- eval-set digest: `{eval_digest}`",
        f"- champion before: {f'v{champion.version}' if champion else 'none'}",
        "",
        "## Reasons",
        "",
        *[f"- {r}" for r in decision.reasons],
        "",
        "## Metrics",
        "",
        "| metric | challenger | champion |",
        "|---|---|---|",
    ]
    champ = version_metrics(champion) if champion else {}
    for key in sorted(metrics):
        other = f"{champ[key]:.4f}" if key in champ else "-"
        lines.append(f"| `{key}` | {metrics[key]:.4f} | {other} |")
    return "\n".join(lines) + "\n"


def register_model(
    cfg,
    model_dir: str | Path,
    metrics: dict[str, float],
    eval_digest: str | None = None,
    dataset: str | Path | None = None,
    report: str | Path | None = None,
) -> Registration:
    """Log, register, alias and judge one model version (see the module docstring)."""
    import mlflow

    from miva.registry.model_logging import log_model

    configure(cfg)
    reg = cfg.registry
    name = reg.model_name
    folder = localize_model(model_dir)
    with stage_run(cfg, "register") as run:
        run_id = run.info.run_id
        parent = (run.data.tags or {}).get("mlflow.parentRunId", "")
        if metrics:
            tracking_call(
                cfg,
                "log metrics",
                mlflow.log_metrics,
                {metric_key(k): v for k, v in metrics.items()},
            )
        dataset_digest = None
        if dataset:
            dataset_digest = log_dataset(dataset, context="train").digest
        if report:
            log_report(report)
        info = tracking_call(cfg, "upload the model", log_model, folder)

        tags = {
            TAG_CONFIG: cfg.digest(),
            TAG_PARENT_RUN: parent,
            TAG_EVAL: eval_digest or "",
            TAG_DATASET: dataset_digest or "",
            "miva.source_model": str(model_dir),
            **{f"{METRIC_PREFIX}{k}": repr(v) for k, v in metrics.items()},
        }
        mv = tracking_call(
            cfg,
            f"register a version of {name!r}",
            mlflow.register_model,
            info.model_uri,
            name,
            tags=tags,
        )
        version = str(mv.version)
        client = _client()
        tracking_call(
            cfg,
            "set the challenger alias",
            client.set_registered_model_alias,
            name,
            CHALLENGER,
            version,
        )

        def judge() -> tuple[Decision, Any]:
            with promotion_lock(cfg):
                champion = version_by_alias(cfg, CHAMPION)
                decision = decide(
                    metrics,
                    eval_digest,
                    version_metrics(champion) if champion else None,
                    (champion.tags or {}).get(TAG_EVAL) if champion else None,
                    primary=reg.primary_metric,
                    margin=reg.margin,
                    guards=reg.guards,
                    champion_version=str(champion.version) if champion else None,
                )
                if decision.promote:
                    _set_champion(cfg, version, [*_history(cfg), version])
                client.set_model_version_tag(name, version, TAG_DECISION, decision.outcome)
                client.set_model_version_tag(
                    name, version, TAG_REASONS, "; ".join(decision.reasons)[:4900]
                )
                return decision, champion

        decision, champion_before = tracking_call(cfg, "apply the promotion policy", judge)
        summary = summary_markdown(cfg, version, decision, metrics, eval_digest, champion_before)
        tracking_call(cfg, "write the summary", client.update_model_version, name, version, summary)
        mlflow.log_text(summary, "promotion.md")
        mlflow.set_tags(
            {TAG_DECISION: decision.outcome, "miva.model_version": version, "miva.model_name": name}
        )
        _link_eval_traces(run.info.experiment_id, parent, name, version, info.model_id)
    after = version_by_alias(cfg, CHAMPION)
    deployed = None
    if reg.deploy.on_promotion and decision.promote and after and str(after.version) == version:
        deployed = _deploy_champion(cfg, version)
    return Registration(
        name=name,
        version=version,
        decision=decision,
        champion=str(after.version) if after else None,
        run_id=run_id,
        summary=summary,
        deployed=deployed,
    )


def _link_eval_traces(
    experiment_id: str, parent: str, name: str, version: str, model_id: str | None
) -> None:
    """Tag the traces of this pipeline run's evaluation with the new version."""
    if not parent:
        return
    import mlflow

    from miva.eval.traces import link_traces_to_version

    try:
        runs = mlflow.search_runs(
            experiment_ids=[experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent}' and tags.`miva.stage` = 'evaluate'",
            output_format="list",
        )
    except Exception as exc:
        log.warning("could not find the evaluation runs of %s: %s", parent, exc)
        return
    link_traces_to_version(experiment_id, [r.info.run_id for r in runs], name, version, model_id)


def _deploy_champion(cfg, version: str) -> str | None:
    """Render (and apply) the new champion's InferenceService; a failure is logged only:
    the version is registered and promoted either way."""
    from miva.registry.deploy import deploy

    try:
        return str(deploy(cfg, version))
    except Exception as exc:
        log.warning("champion v%s: deploying its InferenceService failed: %s", version, exc)
        return None


# ---------------------------------------------------------------------------- by hand


def promote(cfg, version: str, reason: str = "promoted by hand") -> None:
    """Make `version` the champion (records the decision on the version)."""
    configure(cfg)
    name = cfg.registry.model_name
    client = _client()

    def run() -> None:
        client.get_model_version(name, str(version))  # fails clearly when it does not exist
        with promotion_lock(cfg):
            _set_champion(cfg, str(version), [*_history(cfg), str(version)])
            client.set_model_version_tag(name, str(version), TAG_DECISION, "promoted (manual)")
            client.set_model_version_tag(name, str(version), TAG_REASONS, reason)

    tracking_call(cfg, f"promote {name} v{version}", run)


def rollback(cfg, version: str | None = None) -> str:
    """Give `champion` back to the previous champion (or to `version`); returns it."""
    configure(cfg)
    name = cfg.registry.model_name

    def run() -> str:
        with promotion_lock(cfg):
            current = version_by_alias(cfg, CHAMPION)
            history = _history(cfg)
            if version is not None:
                target = str(version)
                _client().get_model_version(name, target)
                history = [*history, target]
            else:
                if current is not None:
                    while history and history[-1] == str(current.version):
                        history.pop()
                if not history:
                    raise MivaError(f"{name}: no earlier champion to roll back to")
                target = history[-1]
            _set_champion(cfg, target, history)
            _client().set_model_version_tag(
                name,
                target,
                TAG_DECISION,
                f"champion by rollback from v{current.version if current else '-'}",
            )
            return target

    return tracking_call(cfg, f"roll back {name}", run)


def show(cfg) -> str:
    """A markdown table of the versions, their aliases, decisions and primary metric."""
    configure(cfg)
    name = cfg.registry.model_name
    client = _client()
    versions = tracking_call(cfg, "list versions", client.search_model_versions, f"name = '{name}'")
    if not versions:
        return f"{name}: no versions registered yet"
    rm = tracking_call(cfg, "read the registered model", client.get_registered_model, name)
    aliases: dict[str, list[str]] = {}
    for alias, v in (rm.aliases or {}).items():
        aliases.setdefault(str(v), []).append(alias)
    primary = cfg.registry.primary_metric
    lines = [
        f"# {name}",
        "",
        f"| version | aliases | decision | {primary} | eval digest | created |",
        "|---|---|---|---|---|---|",
    ]
    for mv in sorted(versions, key=lambda m: int(m.version), reverse=True):
        tags = mv.tags or {}
        value = version_metrics(mv).get(primary)
        lines.append(
            f"| {mv.version} | {', '.join(sorted(aliases.get(str(mv.version), []))) or '-'} "
            f"| {tags.get(TAG_DECISION, '-')} | {'-' if value is None else f'{value:.4f}'} "
            f"| {tags.get(TAG_EVAL) or '-'} "
            f"| {time.strftime('%Y-%m-%d %H:%M', time.localtime(mv.creation_timestamp / 1000))} |"
        )
    return "\n".join(lines)
