"""What an evaluation produces, as typed records (no logic): the items evaluated together
(`EvalSet`), one row per item and sample (`ItemRecord`), one model's run (`ModelRun`) and
the whole result with both models (`EvalResult`). The runner builds them; the outputs and
the report read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from miva.agent.trajectory import Trajectory
from miva.data.benchmarks.base import Benchmark, Skipped
from miva.data.schema import Sample


@dataclass
class EvalSet:
    """Items evaluated together: one dataset split or one benchmark."""

    name: str
    samples: list[Sample]
    scorer: Benchmark
    skipped: list[Skipped] = field(default_factory=list)
    tools: tuple[str, ...] | None = None  # None: the configured agent.tools
    digest: str = ""  # identifies the evaluated items (metrics.json `eval/<set>/digest`)


@dataclass
class ItemRecord:
    """One row of predictions.parquet."""

    set: str
    model: str
    sample_id: str
    task: str
    sample_index: int
    answer_type: str
    question: str
    gold: str
    raw_answer: str | None
    prediction: str | None
    score: float
    correct: bool
    valid: bool
    status: str
    num_turns: int
    num_tokens: int
    tools: list[str]
    tool_calls: str  # JSON list of {turn, name, arguments, ok, region}
    details: str  # JSON of the scorer's per-item details


@dataclass
class ModelRun:
    model: str
    metrics: dict[str, float]  # relative names: <set>/<task>/<metric>
    records: list[ItemRecord]
    trajectories: dict[tuple[str, str], Trajectory]  # (set, sample id) -> first trajectory
    samples: dict[tuple[str, str], Sample]
    attention: dict[str, dict] = field(default_factory=dict)  # set -> curve (eval/attention.py)


@dataclass
class EvalResult:
    metrics: dict[str, float]  # flat: eval/..., baseline/..., delta/...
    main: ModelRun
    baseline: ModelRun | None
    sets: list[EvalSet]

    @property
    def records(self) -> list[ItemRecord]:
        return self.main.records + (self.baseline.records if self.baseline else [])

    @property
    def digests(self) -> dict[str, str]:
        """`eval/<set>/digest` -> digest of the items (the registry compares these)."""
        return {f"eval/{es.name}/digest": es.digest for es in self.sets if es.digest}
