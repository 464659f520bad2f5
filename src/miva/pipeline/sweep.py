"""Hyperparameter sweeps: the spec file, its trials, the winner and the summary table.

A sweep file (YAML) lists config keys and the values to try:

    name: lr-and-group           # the MLflow parent run's name
    metric: eval/val/overall/accuracy
    goal: maximize               # or minimize
    strategy: grid               # grid: every combination, in the listed order
    # strategy: random           # random: `trials` distinct combinations drawn with `seed`
    # trials: 4
    # seed: 0
    parallelism: 2               # trials running at once (dsl.ParallelFor parallelism)
    parameters:
      grpo.lr: [1.0e-5, 3.0e-5]
      grpo.group_size: [4, 8]
    fixed: [grpo.steps=20]      # overrides every trial shares (optional)

Each trial is a list of `key=value` overrides (the strings `--set` takes) on top of the
preset and the run's own overrides. Trials train with GRPO and are evaluated on the
validation split; the best by `metric` (ties: the lowest trial number) is evaluated on the
test split and is the only one registered. This module is pure: the DAG
(`pipelines/sweep.py`) and the CLI call it.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from miva.errors import ConfigError


class SweepSpec(BaseModel):
    """A sweep file, validated."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("sweep", description="Name of the sweep's MLflow parent run.")
    metric: str = Field(
        "eval/val/overall/accuracy",
        description="Validation metric that picks the winner (a name from the trial's "
        "metrics.json, e.g. eval/val/overall/accuracy).",
    )
    goal: Literal["maximize", "minimize"] = Field("maximize")
    strategy: Literal["grid", "random"] = Field(
        "grid", description="grid: every combination; random: `trials` distinct draws."
    )
    trials: int | None = Field(
        None, ge=1, description="random only: how many combinations to draw."
    )
    seed: int = Field(0, description="random only: the draw's seed.")
    parallelism: int = Field(
        2,
        ge=1,
        description="Trials that run at once (dsl.ParallelFor parallelism); bounded on a "
        "cluster by the GPU quota (Kueue queues the rest).",
    )
    parameters: dict[str, list[Any]] = Field(
        description="Config key path -> the values to try (each list non-empty)."
    )
    fixed: list[str] = Field(
        default_factory=list, description="`key=value` overrides every trial shares."
    )

    @field_validator("parameters")
    @classmethod
    def _non_empty(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if not value:
            raise ValueError("parameters is empty: list at least one key with values")
        for key, values in value.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"parameters.{key} must be a non-empty list of values")
        return value

    @model_validator(mode="after")
    def _trials_for_random(self) -> SweepSpec:
        if self.strategy == "random" and self.trials is None:
            raise ValueError("strategy random needs `trials` (how many combinations to draw)")
        if self.strategy == "grid" and self.trials is not None:
            raise ValueError("`trials` is for strategy random; a grid runs every combination")
        return self

    @property
    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.parameters.values())


@dataclass(frozen=True)
class Trial:
    index: int
    settings: dict[str, Any]  # key -> value of this trial
    overrides: list[str]  # fixed + settings as `key=value`

    @property
    def name(self) -> str:
        return f"trial-{self.index}"


@dataclass
class TrialResult:
    index: int
    settings: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    model_uri: str = ""


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; errors name the file and the field."""
    from pydantic import ValidationError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: sweep file not found")
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    try:
        return SweepSpec.model_validate(tree or {})
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"{path}: invalid sweep file:\n" + "\n".join(lines)) from None


def override_text(key: str, value: Any) -> str:
    """`key=value` with the value written so `--set` parses it back to the same value
    (YAML flow style: 1e-05 stays a float, lists stay lists)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return f"{key}={text.removesuffix('...').strip()}"


def _combination(spec: SweepSpec, flat: int) -> dict[str, Any]:
    """The `flat`-th grid combination (row-major: the last key varies fastest)."""
    settings: dict[str, Any] = {}
    for key, values in reversed(list(spec.parameters.items())):
        flat, i = divmod(flat, len(values))
        settings[key] = values[i]
    return {k: settings[k] for k in spec.parameters}


def expand(spec: SweepSpec) -> list[Trial]:
    """The trials: the grid in order, or `trials` distinct combinations drawn with `seed`
    (without building the grid, so a large grid with few draws stays cheap)."""
    size = spec.grid_size
    if spec.strategy == "grid":
        picks = list(range(size))
    else:
        assert spec.trials is not None
        if spec.trials > size:
            raise ConfigError(
                f"sweep {spec.name!r}: {spec.trials} random trials requested but the listed "
                f"values give only {size} distinct combinations"
            )
        picks = random.Random(spec.seed).sample(range(size), spec.trials)
    trials = []
    for index, flat in enumerate(picks):
        settings = _combination(spec, flat)
        overrides = list(spec.fixed) + [override_text(k, v) for k, v in settings.items()]
        trials.append(Trial(index, settings, overrides))
    return trials


def check_trials(preset: str, base_overrides: list[str], trials: list[Trial]) -> None:
    """Resolve every trial's config now, so a bad key or value fails before any training,
    with the trial named."""
    from miva.config import load_config

    for trial in trials:
        try:
            load_config(preset, [*base_overrides, *trial.overrides])
        except ConfigError as exc:
            raise ConfigError(f"sweep {trial.name} ({trial.settings}): {exc}") from None


def pick_winner(spec: SweepSpec, results: list[TrialResult]) -> TrialResult:
    """The best trial by `spec.metric` (`spec.goal`); ties go to the lowest trial number.
    Trials without a finite value of the metric cannot win; none with one is an error."""
    scored = [
        r
        for r in results
        if isinstance(r.metrics.get(spec.metric), int | float)
        and math.isfinite(r.metrics[spec.metric])
    ]
    if not scored:
        known = sorted({k for r in results for k in r.metrics})[:20]
        raise ConfigError(
            f"sweep {spec.name!r}: no trial has a value for metric {spec.metric!r}; "
            f"metrics the trials report include {known}"
        )
    sign = 1.0 if spec.goal == "maximize" else -1.0
    return min(scored, key=lambda r: (-sign * r.metrics[spec.metric], r.index))


def summary_rows(spec: SweepSpec, results: list[TrialResult], winner: int | None) -> list[dict]:
    """One row per trial: trial, each parameter, the metric, seconds, winner mark."""
    rows = []
    for r in sorted(results, key=lambda r: r.index):
        row: dict[str, Any] = {"trial": r.index}
        row.update({k: r.settings.get(k) for k in spec.parameters})
        row[spec.metric] = r.metrics.get(spec.metric)
        row["seconds"] = round(r.seconds, 1)
        row["winner"] = r.index == winner
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """A Markdown table (readable printed, rendered by MLflow and KFP Markdown)."""
    if not rows:
        return "(no trials)"
    cols = list(rows[0])

    def cell(value: Any) -> str:
        if isinstance(value, bool):
            return "**winner**" if value else ""
        if isinstance(value, float):
            return f"{value:.4g}"
        return "-" if value is None else str(value)

    body = [[cell(row[c]) for c in cols] for row in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(cols)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += [
        "| " + " | ".join(v.ljust(w) for v, w in zip(b, widths, strict=True)) + " |" for b in body
    ]
    return "\n".join(lines)


def trials_json(trials: list[Trial]) -> list[dict[str, Any]]:
    """What the DAG fans out over (`dsl.ParallelFor` items: JSON-serialisable dicts)."""
    return [
        {
            "index": t.index,
            "name": t.name,
            "overrides": json.dumps(t.overrides),
            "settings": json.dumps(t.settings),
        }
        for t in trials
    ]


def result_json(result: TrialResult) -> str:
    return json.dumps(asdict(result))


def result_from_json(text: str) -> TrialResult:
    return TrialResult(**json.loads(text))
