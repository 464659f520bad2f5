"""The trajectory-level mask (IMAgent): what happens to a trajectory, decided by its rollout status.

Policies per status (``grpo.status_policy``):
- ``train``: the trajectory counts as it is;
- ``mask``: it leaves the loss AND the group mean/std (valid = False, advantage 0);
- ``penalize``: it stays in the loss with its total reward replaced by ``penalty``.

The token-level mask is the trajectory's own ``loss_mask`` (1 exactly on sampled tokens).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

POLICIES = ("train", "mask", "penalize")


@dataclass
class MaskResult:
    rewards: list[float]  # rewards after penalties
    valid: list[bool]  # takes part in the loss and the group statistics
    fractions: dict[str, float] = field(default_factory=dict)  # status -> share of the batch


def apply_status_policy(
    statuses: Sequence[str],
    rewards: Sequence[float],
    policy: Mapping[str, str],
    penalty: float = -1.0,
) -> MaskResult:
    """Apply the per-status policy.

    >>> r = apply_status_policy(["ok", "truncated", "malformed", "ok"], [1.0, 1.0, 0.5, 0.0],
    ...                         {"ok": "train", "truncated": "mask", "malformed": "penalize"})
    >>> r.rewards, r.valid
    ([1.0, 1.0, -1.0, 0.0], [True, False, True, True])
    >>> r.fractions["ok"], r.fractions["truncated"]
    (0.5, 0.25)
    """
    if len(statuses) != len(rewards):
        raise ValueError(f"{len(statuses)} statuses but {len(rewards)} rewards")
    out_r: list[float] = []
    valid: list[bool] = []
    counts: dict[str, int] = {}
    for status, reward in zip(statuses, rewards, strict=True):
        if status not in policy:
            raise KeyError(f"status {status!r} has no policy; known statuses: {sorted(policy)}")
        action = policy[status]
        if action not in POLICIES:
            raise ValueError(f"unknown status policy {action!r} for {status!r}; known: {POLICIES}")
        counts[status] = counts.get(status, 0) + 1
        out_r.append(penalty if action == "penalize" else float(reward))
        valid.append(action != "mask")
    n = max(len(statuses), 1)
    return MaskResult(out_r, valid, {s: c / n for s, c in counts.items()})
