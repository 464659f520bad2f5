"""What every stage returns: one typed record, whatever the stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class StageResult(Generic[T]):
    """`value` is the stage's own record: `DatasetInfo` (synthesize), `Report` (validate),
    `miva.rl.sft.SFTResult` (sft), `miva.rl.grpo.TrainResult` (grpo), `EvalResult`
    (evaluate), `Registration` (register)."""

    stage: str
    output: str  # where the stage wrote (local path, s3:// URI, or model version for register)
    value: T
    metrics: dict[str, float] = field(default_factory=dict)  # what KFP Metrics and MLflow get
    summary: str = ""  # one line with the stage's key figure
    details: list[str] = field(default_factory=list)  # more lines for a person (the CLI)
