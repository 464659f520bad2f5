"""The evaluate stage: the agent on dataset splits and benchmarks, scored, compared with a
baseline model on the same items; metrics.json, predictions.parquet, summary.json and
report.html; with tracking on, `evaluate.trace_samples` trajectories per set as MLflow
traces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from miva import storage
from miva.config import MivaConfig
from miva.stages.result import StageResult
from miva.stages.tracking import log_metrics, stage_run, tracked

# Headline metrics per set, in the order a person looks for them.
HEADLINE = ("accuracy", "acc_iou50", "ap50", "f1", "em", "invalid_rate")


def evaluate(
    cfg: MivaConfig,
    model: str | Path | None = None,
    out: str | Path | None = None,
    dataset: str | Path | None = None,
    benchmarks: dict[str, str] | None = None,
    baseline: str | Path | None = None,
    *,
    generate_factory: Any = None,
) -> StageResult[Any]:
    """Evaluate `model` (default `grpo.output`) on the `evaluate.splits` of `dataset` (None:
    no dataset) and on `benchmarks` (name -> native folder; default `evaluate.benchmarks`),
    and `baseline` (None: none) on the same items; write into `out` (default
    `evaluate.output`). `generate_factory` makes the trajectories: the agent runtime by
    default (`miva.eval.runner.agent_generator`); tests pass recorded ones."""
    from miva.eval.outputs import finite_metrics, write_outputs
    from miva.eval.runner import agent_generator, run_eval

    model = str(model or cfg.grpo.output)
    out = str(out or cfg.evaluate.output)
    benches = cfg.evaluate.benchmarks if benchmarks is None else benchmarks
    inputs = [(str(dataset), "eval")] if dataset else []
    with stage_run(cfg, "evaluate", inputs):
        result = run_eval(
            cfg,
            model,
            dataset=str(dataset) if dataset else None,
            benches=dict(benches),
            baseline=str(baseline) if baseline else None,
            generate_factory=generate_factory or agent_generator,
        )
        metrics = finite_metrics(result.metrics)
        with storage.local_dir(out, prefix="miva-eval-") as folder:
            paths = write_outputs(result, folder, config=cfg.to_dict())
            log_metrics(metrics)
            if tracked(cfg):
                import mlflow

                from miva.registry.tracking import log_report

                mlflow.set_tags({f"miva.{k}": v for k, v in result.digests.items()})
                log_report(paths["report"])
                if cfg.evaluate.trace_samples:
                    from miva.eval.traces import log_eval_traces

                    log_eval_traces(result, cfg.evaluate.trace_samples)
    headline = {
        name: value
        for name, value in metrics.items()
        if name.startswith("eval/") and "/overall/" in name and name.rsplit("/", 1)[-1] in HEADLINE
    }
    main = next((n for n in headline if n.endswith("/accuracy")), None)
    line = f"{main} {metrics[main]:.4f}" if main else f"{len(metrics)} metrics"
    if main:
        # an accuracy says little without what a constant answer scores
        where = main[len("eval/") : -len("/accuracy")]
        beside = [
            f"{label} {metrics[key]:.4f}"
            for label, key in (
                ("majority share", f"eval/{where}/majority_share"),
                ("baseline", f"baseline/{main[5:]}"),
            )
            if key in metrics
        ]
        if beside:
            line += f" ({', '.join(beside)})"
    details = [f"{name} = {value:.4f}" for name, value in sorted(headline.items())]
    details += [f"{name} = {digest}" for name, digest in result.digests.items()]
    details.append(f"wrote {out}: {', '.join(sorted(p.name for p in paths.values()))}")
    return StageResult("evaluate", out, result, metrics, summary=line, details=details)
