"""What every reward reads from a trajectory: the assistant's own text and its final answer."""

from __future__ import annotations

from typing import Any

from miva.scoring import score_answer, scored_answer


def assistant_text(traj: Any) -> str:
    """The text the policy wrote (all assistant turns; tool results and prompts excluded)."""
    return "".join(t.text for t in traj.turns if t.role == "assistant")


def prediction(traj: Any, sample: Any = None, cfg: Any = None) -> str | None:
    """The single answer outside the think block, over all assistant turns (None if 0 or >1).

    Box answers are written in the model's coordinates; when ``cfg.convert_answer`` is set
    (the trainer sets it from the agent runtime) it maps the text to dataset pixels.
    """
    text = scored_answer(assistant_text(traj))
    convert = getattr(cfg, "convert_answer", None)
    boxes = sample is not None and sample.answer_type in ("bbox", "image_bbox")
    if text is not None and convert is not None and boxes:
        return convert(traj, sample, text)
    return text


def accuracy_of(traj: Any, sample: Any, cfg: Any) -> float:
    """Accuracy score of one trajectory, with the tolerances of the reward config."""
    return score_answer(
        sample.answer_type,
        prediction(traj, sample, cfg),
        sample.answer,
        sample.choices,
        number_tolerance=cfg.number_tolerance,
        iou_threshold=cfg.iou_threshold,
    )
