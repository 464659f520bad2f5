"""Served requests as MLflow traces (`serve.trace_requests`), written off the request path.

Each answered choice becomes one trace (`miva.eval.traces.log_trajectory`) in the
experiment `registry.experiment`, tagged ``miva.source = serve`` and
``miva.request_id``, grouped by request in MLflow's Sessions view, and linked to the
registered version when the server runs a models:/ URI (metadata ``mlflow.modelId``,
tags ``miva.model_name`` / ``miva.model_version``). Span times are the measured times of
the batch's turns. Writing happens on one background thread: a slow or failing tracking
store delays traces, never answers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)


class RequestTracer:
    def __init__(self, cfg: Any, source: Any) -> None:
        from miva.registry.tracking import configure, experiment_id

        configure(cfg)
        self.experiment_id = experiment_id(cfg)
        self.source = source
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="miva-trace")
        self.errors = 0

    def submit(
        self,
        batch: Sequence[Any],
        groups: Sequence[Sequence[Any]],
        answers: Sequence[Sequence[Any]],
        start_ns: int,
        end_ns: int,
        turn_times: Sequence[tuple[int, int]] | None = None,
    ):
        return self.pool.submit(self._log, batch, groups, answers, start_ns, end_ns, turn_times)

    def _log(self, batch, groups, answers, start_ns, end_ns, turn_times) -> list[str]:
        from miva.eval.traces import log_trajectory

        src = self.source
        tags = {"miva.source": "serve"}
        metadata: dict[str, str] = {}
        if src.registered_name:
            tags |= {"miva.model_name": src.registered_name, "miva.model_version": src.version}
        else:
            tags["miva.model"] = str(src.uri)
        if src.model_id:
            metadata["mlflow.modelId"] = src.model_id
        ids = []
        for prepared, group, group_answers in zip(batch, groups, answers, strict=True):
            for traj, answer in zip(group, group_answers, strict=True):
                try:
                    ids.append(
                        log_trajectory(
                            traj,
                            prepared.sample,
                            start_ns=start_ns,
                            end_ns=end_ns,
                            turn_times=turn_times,
                            answer=answer.text,
                            tags={**tags, "miva.request_id": prepared.id},
                            metadata={**metadata, "mlflow.trace.session": prepared.id},
                            experiment_id=self.experiment_id,
                        )
                    )
                except Exception as exc:
                    self.errors += 1
                    log.warning("could not trace request %s: %s", prepared.id, exc)
        return ids

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        try:
            import mlflow

            mlflow.flush_trace_async_logging()
        except Exception as exc:
            log.warning("flushing traces failed: %s", exc)
