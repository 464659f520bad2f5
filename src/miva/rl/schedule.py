"""Learning-rate schedules as pure multipliers of the base rate (for `LambdaLR`).

Linear warm-up over `warmup_steps`, then constant, or a cosine or linear decay to
`min_ratio` of the base rate at `total_steps`. Warm-up keeps the first updates of a
fresh optimizer (Adam's second moments still near zero) small; the decay lets the last
updates settle instead of bouncing around at the full rate, which is where a GRPO run at a
constant rate gave back its gains (bench/RESULTS.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

Decay = Literal["constant", "cosine", "linear"]


def lr_multiplier(
    step: int,
    warmup_steps: int = 0,
    total_steps: int | None = None,
    decay: Decay = "constant",
    min_ratio: float = 0.1,
) -> float:
    """Multiplier of the base rate after `step` completed optimizer steps (0-based).

    >>> lr_multiplier(0, warmup_steps=4)
    0.25
    >>> lr_multiplier(10, warmup_steps=4)
    1.0
    >>> round(lr_multiplier(7, 2, total_steps=12, decay="cosine", min_ratio=0.0), 3)
    0.5
    >>> lr_multiplier(12, 2, total_steps=12, decay="linear", min_ratio=0.1)
    0.1
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay == "constant" or not total_steps or total_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    if decay == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif decay == "linear":
        shape = 1.0 - progress
    else:
        raise ValueError(f"unknown decay {decay!r}; known: constant, cosine, linear")
    return min_ratio + (1.0 - min_ratio) * shape


def schedule(
    warmup_steps: int = 0,
    total_steps: int | None = None,
    decay: Decay = "constant",
    min_ratio: float = 0.1,
) -> Callable[[int], float]:
    """`lr_multiplier` with its settings bound, ready for `torch.optim.lr_scheduler.LambdaLR`."""

    def multiplier(step: int) -> float:
        return lr_multiplier(step, warmup_steps, total_steps, decay, min_ratio)

    return multiplier
