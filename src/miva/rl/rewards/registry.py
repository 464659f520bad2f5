"""The reward registry: name -> pure function, combined by the weights of the reward config.

Every function has the signature ``(trajectories, samples, cfg) -> list[float]`` where
``samples[i]`` is the sample ``trajectories[i]`` answered and ``cfg`` is the reward config
(`miva.config.RewardConfig`). All components are computed and logged for every trajectory;
the total is ``sum(weights[name] * component[name])``. The penalties (``length``, ``turns``)
join the total with weight 1 when they are switched on in the config and not weighted
explicitly. ``judge`` (an LLM judge for text answers, `judge.py`) costs requests, so it is
computed only when ``weights`` names it; `RewardSettings.of` then builds its client.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from miva.rl.rewards._common import accuracy_of
from miva.rl.rewards.format import format_reward
from miva.rl.rewards.grounding import grounding_image_reward, grounding_object_reward
from miva.rl.rewards.judge import judge_reward
from miva.rl.rewards.penalties import length_penalty, turn_penalty
from miva.rl.rewards.tool_use import tool_gain_reward

RewardFn = Callable[[Sequence[Any], Sequence[Any], Any], list[float]]


@dataclass
class RewardSettings:
    """The reward config's fields plus the trainer's answer converter (model -> dataset boxes)."""

    weights: dict[str, float] = field(default_factory=lambda: {"accuracy": 1.0})
    iou_threshold: float | None = None
    number_tolerance: float = 0.0
    tool_gain_requires_evidence: bool = False
    length_penalty_tokens: int | None = None
    turn_penalty: float = 0.0
    convert_answer: Callable[[Any, Any, str], str | None] | None = None
    judge: Any = None  # miva.rl.judge.Judge when `weights` names "judge"

    @classmethod
    def of(cls, reward_cfg: Any, convert_answer: Any = None) -> RewardSettings:
        names = [f for f in cls.__dataclass_fields__ if f not in ("convert_answer", "judge")]
        judge = None
        if "judge" in reward_cfg.weights:
            from miva.rl.judge import Judge

            judge = Judge(reward_cfg.judge)
        return cls(
            **{n: getattr(reward_cfg, n) for n in names},
            convert_answer=convert_answer,
            judge=judge,
        )


def accuracy_reward(trajectories: Sequence[Any], samples: Sequence[Any], cfg: Any) -> list[float]:
    """Accuracy of the final answer for the sample's answer type (see `miva.scoring.score_answer`).

    >>> from types import SimpleNamespace as NS
    >>> cfg = NS(number_tolerance=0.0, iou_threshold=None)
    >>> s = NS(answer_type="choice", answer="B", choices=["red", "blue"])
    >>> hidden = NS(turns=[NS(role="assistant", text="<think><answer>B</answer></think>B")])
    >>> right = NS(turns=[NS(role="assistant", text="<think>blue</think><answer>B</answer>")])
    >>> accuracy_reward([hidden, right], [s, s], cfg)
    [0.0, 1.0]
    """
    return [accuracy_of(t, s, cfg) for t, s in zip(trajectories, samples, strict=True)]


REWARDS: dict[str, RewardFn] = {
    "accuracy": accuracy_reward,
    "format": format_reward,
    "tool_gain": tool_gain_reward,
    "grounding_image": grounding_image_reward,
    "grounding_object": grounding_object_reward,
    "length": length_penalty,
    "turns": turn_penalty,
    "judge": judge_reward,
}
# Components computed only when weighted (they cost more than a rule).
ON_DEMAND = frozenset({"judge"})


def get_reward(name: str) -> RewardFn:
    if name not in REWARDS:
        raise KeyError(f"unknown reward {name!r}; known: {sorted(REWARDS)}")
    return REWARDS[name]


def reward_weights(cfg: Any) -> dict[str, float]:
    """The weights of the total: the configured ones plus enabled penalties at weight 1.

    >>> from types import SimpleNamespace as NS
    >>> reward_weights(NS(weights={"accuracy": 1.0}, length_penalty_tokens=32, turn_penalty=0.0))
    {'accuracy': 1.0, 'length': 1.0}
    """
    weights = dict(cfg.weights)
    for name in weights:
        get_reward(name)
    if cfg.length_penalty_tokens and "length" not in weights:
        weights["length"] = 1.0
    if cfg.turn_penalty and "turns" not in weights:
        weights["turns"] = 1.0
    return weights


def score(trajectories: Sequence[Any], samples: Sequence[Any], cfg: Any) -> list[dict[str, float]]:
    """Every component for every trajectory plus ``total``; also stored on the trajectories.

    >>> from types import SimpleNamespace as NS
    >>> cfg = NS(weights={"accuracy": 0.8, "format": 0.2, "tool_gain": 1.2}, number_tolerance=0.0,
    ...          iou_threshold=None, tool_gain_requires_evidence=False,
    ...          length_penalty_tokens=None, turn_penalty=0.0)
    >>> s = NS(answer_type="number", answer=3, choices=None, evidence=[])
    >>> t = NS(turns=[NS(role="assistant", text="<answer>3</answer>")], tool_calls=[],
    ...        status="ok", loss_mask=[1, 1], rewards={}, reward=0.0)
    >>> score([t], [s], cfg)[0]["total"]  # 0.8 * 1 + 0.2 * 1 + 1.2 * 0
    1.0
    """
    if len(trajectories) != len(samples):
        raise ValueError(f"{len(trajectories)} trajectories but {len(samples)} samples")
    weights = reward_weights(cfg)
    columns = {
        name: fn(trajectories, samples, cfg)
        for name, fn in REWARDS.items()
        if name not in ON_DEMAND or name in weights
    }
    rows: list[dict[str, float]] = []
    for i, traj in enumerate(trajectories):
        row = {name: float(col[i]) for name, col in columns.items()}
        total = sum(w * row[name] for name, w in weights.items())
        row["total"] = float(total) if math.isfinite(total) else math.nan
        traj.rewards = {k: v for k, v in row.items() if k != "total"}
        traj.reward = row["total"]
        rows.append(row)
    return rows
