"""Format reward: the answer tag appears exactly once, tags are balanced, tool calls parse."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from miva.rl.rewards._common import assistant_text, prediction

_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)


def _tool_calls_parse(text: str) -> bool:
    for body in _TOOL_CALL.findall(text):
        try:
            call = json.loads(body)
        except ValueError:
            return False
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            return False
        if not isinstance(call.get("arguments", {}), dict):
            return False
    return True


def format_ok(text: str) -> bool:
    """The format rules on a whole response.

    >>> format_ok("<think>look</think><answer>2</answer>")
    True
    >>> format_ok("<think>look<answer>2</answer>")  # unbalanced think
    False
    >>> format_ok('<tool_call>{"name": "zoom", "arguments": {}}</tool_call><answer>B</answer>')
    True
    >>> format_ok("<tool_call>{not json}</tool_call><answer>B</answer>")
    False
    """
    for tag in ("think", "answer", "tool_call"):
        if text.count(f"<{tag}>") != text.count(f"</{tag}>"):
            return False
    return text.count("<answer>") == 1 and _tool_calls_parse(text)


def format_reward(trajectories: Sequence[Any], samples: Sequence[Any], cfg: Any) -> list[float]:
    """1.0 when the response follows the format and the rollout found one answer, else 0.0.

    >>> from types import SimpleNamespace as NS
    >>> ok = NS(turns=[NS(role="assistant", text="<think>x</think><answer>1</answer>")], status="ok")
    >>> bad = NS(turns=[NS(role="assistant", text="<answer>1</answer><answer>2</answer>")], status="ok")
    >>> format_reward([ok, bad], [None, None], None)
    [1.0, 0.0]
    """
    out = []
    for traj in trajectories:
        good = traj.status != "malformed" and format_ok(assistant_text(traj))
        out.append(float(good and prediction(traj) is not None))
    return out
