"""Rejection-sampling curation: keep the prompts the starting policy solves sometimes, not always.

Uses the synthesis engineer's difficulty filter (`miva.data.synth.difficulty`) with the
agent as the policy (k sampled rollouts per prompt) and the accuracy reward as the scorer
(an answer counts as solved at score >= 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from miva.scoring import is_correct, score_answer, scored_answer


def answer_text(traj: Any, sample: Any) -> str:
    """The trajectory's answer in dataset conventions (boxes converted), '' when absent."""
    from miva.agent.rollout import parse_trajectory_answer
    from miva.data.schema import format_answer

    assistant = "".join(t.text for t in traj.turns if t.role == "assistant")
    if scored_answer(assistant) is None:
        return ""
    if sample.answer_type in ("bbox", "image_bbox"):
        typed = parse_trajectory_answer(traj, sample)
        return "" if typed is None else format_answer(sample.answer_type, typed)
    return scored_answer(assistant) or ""


def curate(samples: Sequence[Any], agent: Any, k: int, reward_cfg: Any, seed: int = 0):
    """Run the difficulty filter; returns its `DifficultyResult` (kept samples and pass rates)."""
    from miva.data.synth.difficulty import filter_by_difficulty

    cache: dict[str, list[str]] = {}

    def policy(sample: Any, n: int) -> list[str]:
        if sample.id not in cache:
            trajs = agent.rollout([sample], n, seed=seed)
            cache[sample.id] = [answer_text(t, sample) for t in trajs]
        return cache[sample.id]

    def scorer(sample: Any, text: str) -> float:
        score = score_answer(
            sample.answer_type,
            text or None,
            sample.answer,
            sample.choices,
            number_tolerance=reward_cfg.number_tolerance,
            iou_threshold=reward_cfg.iou_threshold,
        )
        return float(is_correct(score))

    return filter_by_difficulty(samples, policy, k=k, scorer=scorer)
