"""Penalties (values <= 0): response length beyond a budget, and turns beyond the first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def length_penalty(trajectories: Sequence[Any], samples: Sequence[Any], cfg: Any) -> list[float]:
    """-(n - L) / L for n sampled tokens over the budget L = cfg.length_penalty_tokens; 0 when unset.

    With L = 10: 15 tokens -> -(15 - 10) / 10 = -0.5; 8 tokens -> 0.

    >>> from types import SimpleNamespace as NS
    >>> length_penalty([NS(loss_mask=[1] * 15), NS(loss_mask=[1] * 8)], [None, None],
    ...                NS(length_penalty_tokens=10))
    [-0.5, 0.0]
    """
    budget = cfg.length_penalty_tokens
    if not budget:
        return [0.0] * len(trajectories)
    return [-max(sum(t.loss_mask) - budget, 0) / budget for t in trajectories]


def turn_penalty(trajectories: Sequence[Any], samples: Sequence[Any], cfg: Any) -> list[float]:
    """-cfg.turn_penalty per assistant turn beyond the first.

    >>> from types import SimpleNamespace as NS
    >>> turns = [NS(role="assistant"), NS(role="tool"), NS(role="assistant"), NS(role="assistant")]
    >>> turn_penalty([NS(turns=turns)], [None], NS(turn_penalty=0.1))
    [-0.2]
    """
    out = []
    for traj in trajectories:
        n = sum(1 for t in traj.turns if t.role == "assistant")
        out.append(-cfg.turn_penalty * max(n - 1, 0))
    return [round(v, 12) for v in out]
