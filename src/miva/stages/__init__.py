"""One function per DAG stage, named as the DAG names it. The CLI (`miva <stage>`), the KFP
components and the tests call these; nothing else runs a stage.

    synthesize(cfg, out)                                        dataset folder
    validate(cfg, dataset, out)                                 report.json, clean/, quarantine/
    sft(cfg, dataset, out, model)                               SFT model folder
    grpo(cfg, dataset, out, model)                              trained model folder + curves
    evaluate(cfg, model, out, dataset, benchmarks, baseline)    metrics.json, report.html, ...
    register(cfg, model, metrics, dataset, report)              model version + decision

Each takes the resolved config and where to read and write (local paths or s3:// URIs;
None = the config's default location, see `locations`; for evaluate, `dataset` and
`baseline` None mean none), runs as one MLflow stage run when `registry.track_runs` is on
(dataset lineage, metrics, reports) and returns a `StageResult`: `output`, the stage's own
record as `value`, `metrics` (what KFP Metrics and MLflow get) and a one-line `summary`.
"""

from miva.stages.evaluate import evaluate
from miva.stages.grpo import grpo
from miva.stages.register import register
from miva.stages.result import StageResult
from miva.stages.sft import sft
from miva.stages.synthesize import synthesize
from miva.stages.validate import validate

STAGES = ("synthesize", "validate", "sft", "grpo", "evaluate", "register")

__all__ = [
    "STAGES",
    "StageResult",
    "evaluate",
    "grpo",
    "register",
    "sft",
    "synthesize",
    "validate",
]
