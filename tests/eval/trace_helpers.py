"""Real agent trajectories with tool calls, from the agent runtime with a scripted policy
(the tiny random model does not call tools), for the trace tests."""

from __future__ import annotations

import io

from PIL import Image

ZOOM_OK = (
    '<tool_call>{"name": "zoom", "arguments": {"image": 1, "bbox": [0, 0, 24, 24]}}</tool_call>'
)
ZOOM_BAD = (
    '<tool_call>{"name": "zoom", "arguments": {"image": 9, "bbox": [0, 0, 4, 4]}}</tool_call>'
)
ANSWER = "<think>red</think><answer>red</answer>"


def png(color: str = "red", size=(48, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def tool_trajectories(samples, processor, agent_cfg):
    """Every sample: a good zoom, a zoom into a missing image (tool error), an answer."""
    from miva.agent.engines.scripted import ScriptedEngine
    from miva.agent.rollout import Agent
    from miva.agent.tools import build_tools

    script = lambda key, turn: [ZOOM_OK, ZOOM_BAD, ANSWER][turn]  # noqa: E731
    cfg = agent_cfg.model_copy(update={"tools": ["zoom", "view"], "max_turns": 3})
    agent = Agent(processor, cfg, build_tools(cfg), ScriptedEngine(processor, script))
    return agent.rollout(samples, n_per_sample=1, seed=0)


def spans_by_name(trace):
    out: dict[str, list] = {}
    for span in trace.data.spans:
        out.setdefault(span.name, []).append(span)
    return out


def attachment(trace, ref: str) -> bytes:
    """The bytes behind an mlflow-attachment:// reference, from the trace's artifact store."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.tracing.attachments import Attachment
    from mlflow.tracing.utils.artifact_utils import get_artifact_uri_for_trace

    parsed = Attachment.parse_ref(ref)
    repo = get_artifact_repository(get_artifact_uri_for_trace(trace.info))
    return repo.download_trace_attachment(parsed["attachment_id"])
