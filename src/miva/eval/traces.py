"""Agent trajectories as MLflow traces: what the agent did, in MLflow's agent views.

One trace per trajectory:

    agent (AGENT)                 inputs: question, images (attachments), answer type
    ├── model turn 1 (CHAT_MODEL) outputs: the text the model wrote
    ├── tool zoom (TOOL)          inputs: arguments; outputs: result text, crops
    │                             (attachments); status ERROR when the tool failed
    ├── model turn 2 (CHAT_MODEL)
    ...                           root outputs: answer, status, turns

Images travel as MLflow trace attachments (PNG), so the UI shows the crops the agent
looked at. Traces carry tags ``miva.source`` (eval | serve), ``miva.status``,
``miva.sample_id`` and, from evaluation, ``miva.set`` / ``miva.task``; the metadata links
them to the MLflow run (``mlflow.sourceRun``) and, for a served registry model, to the
version's LoggedModel (``mlflow.modelId``, plus tags ``miva.model_name`` /
``miva.model_version``). `link_traces_to_version` adds those tags to an evaluation's
traces once `register` has created the version.

Span times: the rollout advances all trajectories of a batch turn by turn, so a turn's
generation time is shared by the batch. When the caller measured each turn's
(start, end) (`miva serve` does), spans use them; otherwise the trajectory's turns are
spread evenly over the measured rollout interval (attribute ``miva.timing = spread``).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

TRACE_NAME = "miva-agent"


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _attachments(images: Sequence[Any]) -> list[Any]:
    from mlflow.tracing.attachments import Attachment

    out = []
    for img in images:
        blob = img if isinstance(img, (bytes, bytearray)) else _png(img)
        out.append(Attachment(content_type="image/png", content_bytes=bytes(blob)))
    return out


def _turn_windows(
    n_turns: int, start_ns: int, end_ns: int, turn_times: Sequence[tuple[int, int]] | None
) -> tuple[list[tuple[int, int, int]], str]:
    """Per assistant turn: (generation start, generation end, tools end); and the timing kind."""
    if turn_times and len(turn_times) >= n_turns:
        out = []
        for k in range(n_turns):
            gen_start, gen_end = turn_times[k]
            tools_end = turn_times[k + 1][0] if k + 1 < len(turn_times) else end_ns
            out.append((gen_start, gen_end, max(gen_end, tools_end)))
        return out, "measured"
    step = max((end_ns - start_ns) // max(n_turns, 1), 1)
    out = []
    for k in range(n_turns):
        a = start_ns + k * step
        out.append((a, a + step * 3 // 4, a + step))
    return out, "spread"


def log_trajectory(
    traj: Any,
    sample: Any,
    *,
    start_ns: int,
    end_ns: int,
    turn_times: Sequence[tuple[int, int]] | None = None,
    answer: str | None = None,
    tags: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    experiment_id: str | None = None,
) -> str:
    """Record one trajectory as a trace (see the module docstring); returns the trace id."""
    import mlflow
    from mlflow.entities import SpanType

    n_orig = len(sample.images)
    root = mlflow.start_span_no_context(
        TRACE_NAME,
        span_type=SpanType.AGENT,
        inputs={
            "question": sample.question,
            "images": _attachments(sample.images),
            "answer_type": sample.answer_type,
            "choices": sample.choices,
        },
        attributes={"miva.sample_id": sample.id, "miva.family": traj.family},
        tags={"miva.status": traj.status, "miva.sample_id": sample.id, **(tags or {})},
        metadata=metadata or None,
        experiment_id=experiment_id,
        start_time_ns=start_ns,
    )
    assistant = [t for t in traj.turns if t.role == "assistant"]
    windows, timing = _turn_windows(len(assistant), start_ns, end_ns, turn_times)
    crops = list(traj.images[n_orig:])
    calls_by_turn: dict[int, list[Any]] = {}
    for call in traj.tool_calls:
        calls_by_turn.setdefault(call.turn, []).append(call)
    for k, (turn, (gen_start, gen_end, tools_end)) in enumerate(
        zip(assistant, windows, strict=True)
    ):
        span = mlflow.start_span_no_context(
            f"model turn {k + 1}",
            span_type=SpanType.CHAT_MODEL,
            parent_span=root,
            inputs={"turn": k + 1},
            start_time_ns=gen_start,
        )
        span.end(outputs={"text": turn.text}, end_time_ns=gen_end)
        for call in calls_by_turn.get(k, []):
            images, crops = crops[: call.image_count], crops[call.image_count :]
            tool = mlflow.start_span_no_context(
                f"tool {call.name or 'malformed'}",
                span_type=SpanType.TOOL,
                parent_span=root,
                inputs=call.arguments,
                attributes={"miva.turn": k + 1, "miva.region": str(call.region or "")},
                start_time_ns=gen_end,
            )
            outputs: dict[str, Any] = {"ok": call.ok, "result": call.result_text}
            if images:
                outputs["images"] = _attachments(images)
            tool.end(outputs=outputs, status="OK" if call.ok else "ERROR", end_time_ns=tools_end)
    root.end(
        outputs={
            "answer": traj.answer if answer is None else answer,
            "status": traj.status,
            "turns": len(assistant),
            "tool_calls": len(traj.tool_calls),
        },
        attributes={"miva.timing": timing},
        status="OK" if traj.status == "ok" else "ERROR",
        end_time_ns=max(end_ns, start_ns + 1),
    )
    return root.trace_id


def log_eval_traces(result: Any, per_set: int, model: str | None = None) -> list[str]:
    """The first `per_set` trajectories of every evaluated set, as traces of the active run.

    Called by the evaluate stage (`miva.stages.evaluate`); a tracing problem is logged, never raised (the
    metrics are what the evaluation owes)."""
    import mlflow

    if per_set <= 0:
        return []
    run = mlflow.active_run()
    ids: list[str] = []
    try:
        by_set: dict[str, int] = {}
        for (set_name, sample_id), traj in result.main.trajectories.items():
            if by_set.get(set_name, 0) >= per_set:
                continue
            by_set[set_name] = by_set.get(set_name, 0) + 1
            sample = result.main.samples[(set_name, sample_id)]
            now = _now_ns()
            metadata = {"mlflow.trace.session": f"eval/{set_name}"}
            if run is not None:
                metadata["mlflow.sourceRun"] = run.info.run_id
                metadata["mlflow.trace.session"] = f"{run.info.run_id}/{set_name}"
            tags = {
                "miva.source": "eval",
                "miva.set": set_name,
                "miva.task": str(sample.task),
                "miva.model": str(model or result.main.model),
            }
            if run is not None:
                parent = (run.data.tags or {}).get("mlflow.parentRunId")
                if parent:
                    tags["miva.parent_run_id"] = parent
            ids.append(
                log_trajectory(
                    traj,
                    sample,
                    start_ns=now,
                    end_ns=now,
                    tags=tags,
                    metadata=metadata,
                    experiment_id=run.info.experiment_id if run else None,
                )
            )
        mlflow.flush_trace_async_logging()  # written before the stage's run ends
    except Exception as exc:  # traces are a view: never fail an evaluation for them
        log.warning("could not record evaluation traces: %s: %s", type(exc).__name__, exc)
    return ids


def link_traces_to_version(
    experiment_id: str,
    run_ids: Sequence[str],
    name: str,
    version: str,
    model_id: str | None = None,
) -> int:
    """Tag the traces recorded by `run_ids` (the evaluation runs) with the model version
    `register` created from them; returns how many were tagged. Never raises."""
    import mlflow
    from mlflow import MlflowClient

    client, tagged = MlflowClient(), 0
    try:
        for run_id in run_ids:
            found = mlflow.search_traces(
                experiment_ids=[experiment_id], run_id=run_id, return_type="list"
            )
            for trace in found:
                tid = trace.info.trace_id
                client.set_trace_tag(tid, "miva.model_name", name)
                client.set_trace_tag(tid, "miva.model_version", str(version))
                if model_id:
                    client.set_trace_tag(tid, "miva.model_id", model_id)
                tagged += 1
    except Exception as exc:
        log.warning("could not link traces to %s v%s: %s", name, version, exc)
    return tagged


def _now_ns() -> int:
    import time

    return time.time_ns()
