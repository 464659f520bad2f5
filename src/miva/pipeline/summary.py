"""The short summary printed after a local run, read from the run's artifact folders.

kfp.local lays a run out as `<pipeline_root>/<pipeline>-<timestamp>/<task>/<output>`;
task folders are named after the component (`grpo`, `evaluate`, ...), so this module finds
each stage's outputs by component name whichever SFT branch ran.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miva.pipeline.artifacts import read_json
from miva.stages.locations import EVAL_METRICS, VALIDATION_REPORT


@dataclass
class RunSummary:
    run_dir: Path
    run_id: str = ""
    dataset: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    sft_ran: bool = False
    curve: Path | None = None
    eval_metrics: dict[str, Any] = field(default_factory=dict)
    decision: str = ""
    mlflow_ui: str = ""
    logs: Path | None = None  # executor.log and one <task>.log per task
    sweep_table: str = ""  # a sweep run: the trials (miva.pipeline.sweep.format_table)

    def eval_rows(self) -> list[tuple[str, float, float | None, float | None]]:
        return eval_table(self.eval_metrics)

    def render(self) -> str:
        lines = [f"MIVA local run {self.run_id}: {self.run_dir}".replace(" :", ":"), ""]
        if self.dataset:
            counts = self.dataset.get("counts", {})
            per_split = ", ".join(f"{s} {sum(t.values())}" for s, t in sorted(counts.items()))
            lines.append(
                f"dataset     {self.dataset.get('total', '?')} samples ({per_split}); "
                f"digest {str(self.dataset.get('digest', ''))[:12]}"
            )
            tasks: dict[str, int] = {}
            for split in counts.values():
                for task, n in split.items():
                    tasks[task] = tasks.get(task, 0) + n
            lines.append("            " + ", ".join(f"{t} {n}" for t, n in sorted(tasks.items())))
        if self.validation:
            rows = self.validation.get("rows", {})
            reasons = "; ".join(self.validation.get("verdict_reasons") or [])
            lines.append(
                f"validation  {str(self.validation.get('verdict', '?')).upper()}: "
                f"{rows.get('clean', '?')} clean, {rows.get('quarantined', '?')} quarantined"
                + (f" ({reasons})" if reasons else "")
            )
        lines.append(f"sft         {'ran' if self.sft_ran else 'skipped (sft.enabled=false)'}")
        lines.append(f"training    curve: {self.curve or 'none written'}")
        if self.sweep_table:
            lines += ["", "sweep trials (validation split):", "", self.sweep_table, ""]
        rows = self.eval_rows()
        if rows:
            m = self.eval_metrics
            lines += [
                "",
                "| metric | trained | 95% CI | start | delta | paired p | majority share | items |",
                "|---|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for name, value, base, delta in rows:
                fmt = lambda x: "" if x is None else f"{x:.4f}"  # noqa: E731
                where = name[len("eval/") :].rsplit("/", 1)[0]
                lo, hi = m.get(f"{name}_ci95_low"), m.get(f"{name}_ci95_high")
                ci = f"{lo:.3f}-{hi:.3f}" if lo is not None and hi is not None else ""
                p = m.get(f"delta/{where}/p_value") if name.endswith("/accuracy") else None
                major = (
                    m.get(f"eval/{where}/majority_share") if name.endswith("/accuracy") else None
                )
                items = m.get(f"eval/{where}/items")
                lines.append(
                    f"| {name} | {value:.4f} | {ci} | {fmt(base)} | {fmt(delta)} | "
                    f"{'' if p is None else f'{p:.2g}'} | {'' if major is None else f'{major:.3f}'} | "
                    f"{'' if items is None else int(items)} |"
                )
            lines.append("")
            from miva.eval.verdict import verdicts

            lines += verdicts(m)
            lines.append("")
        if self.decision:
            lines.append("registry    " + self.decision)
        if self.logs:
            lines.append(f"logs        {self.logs}/ (executor.log, one <task>.log per task)")
        if self.mlflow_ui:
            lines += ["", f"look at it all: {self.mlflow_ui}"]
        return "\n".join(lines)


HEADLINE = ("accuracy", "acc_iou50", "ap50", "f1", "em")


def eval_table(metrics: dict[str, Any]) -> list[tuple[str, float, float | None, float | None]]:
    """(metric, trained, start, delta) rows from the flat map `miva evaluate` writes.

    `miva evaluate` names the evaluated model's metrics `eval/<set>/<task>/<metric>`, the
    baseline's (here: the starting model) `baseline/<set>/...` and the difference
    `delta/<set>/...`. Rows are the headline metrics (accuracy, Acc@IoU0.5, AP50, F1, EM)
    when there are any, else every `eval/` number; a missing delta is computed.
    """
    flat = {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    names = sorted(k for k in flat if k.startswith("eval/"))
    headline = [k for k in names if k.rsplit("/", 1)[-1] in HEADLINE]
    rows = []
    for name in headline or names:
        inner = name[len("eval/") :]
        start = flat.get(f"baseline/{inner}")
        delta = flat.get(f"delta/{inner}")
        if delta is None and start is not None:
            delta = flat[name] - start
        rows.append((name, flat[name], start, delta))
    return rows


def _task_dirs(run_dir: Path, component: str) -> list[Path]:
    """Folders of one component's tasks (`grpo`, `grpo-2`, ...), most recent first."""
    found = [
        p
        for p in run_dir.iterdir()
        if p.is_dir() and (p.name == component or p.name.startswith(f"{component}-"))
    ]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _first(run_dir: Path, component: str, output: str) -> Path | None:
    for task in _task_dirs(run_dir, component):
        if (task / output).exists():
            return task / output
    return None


def summarize(run_dir: str | Path, mlflow_db: str | Path | None = None) -> RunSummary:
    run_dir = Path(run_dir)
    out = RunSummary(run_dir=run_dir)
    dataset = _first(run_dir, "synthesize", "dataset")
    if dataset is not None:
        out.dataset = read_json(dataset / "dataset.json")
    validated = _first(run_dir, "validate", "validated")
    if validated is not None:
        out.validation = read_json(validated / VALIDATION_REPORT)
    out.sft_ran = _first(run_dir, "sft", "model") is not None
    model = _first(run_dir, "grpo", "model")
    if model is not None:
        plots = sorted(model.rglob("*.png"))
        curve = _first(run_dir, "grpo", "curve")
        out.curve = plots[0] if plots else curve
    results = _first(run_dir, "evaluate", "results")
    if results is not None:
        out.eval_metrics = read_json(results / EVAL_METRICS)
    decision = _first(run_dir, "register", "decision")
    if decision is not None:
        out.decision = _decision_line(decision.read_text())
    if mlflow_db is not None:
        out.mlflow_ui = f"mlflow ui --backend-store-uri sqlite:///{Path(mlflow_db).resolve()}"
    return out


def _decision_line(markdown: str) -> str:
    """`registered <model> vN: <outcome>; champion is vM` when printed, else the first line."""
    for line in markdown.splitlines():
        if line.startswith("registered "):
            return line.strip()
    for line in markdown.splitlines():
        text = line.strip().lstrip("#").strip()
        if text and not text.startswith("```"):
            return text
    return json.dumps(markdown.strip()[:200])
