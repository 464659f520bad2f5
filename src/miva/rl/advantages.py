"""Group-relative advantages (GRPO) and the zero-variance test of dynamic sampling (DAPO).

Rewards arrive flat, ``[n_groups * G]``, grouped consecutively (trajectories ``g*G .. g*G+G-1``
answer the same prompt). ``valid`` marks trajectories that take part: a trajectory removed by
the trajectory-level mask leaves the group mean and std and gets advantage 0.

    A_i = (r_i - mean_group(r)) / (std + eps)

with ``std`` the unbiased standard deviation of the valid rewards of the group (``group``),
of the whole batch (``batch``), or no division at all (``none``, Dr.GRPO). ``eps`` defaults to
1e-4 (as TRL). Estimators are registered by name in `ADVANTAGES`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

STD_MODES = ("group", "batch", "none")


def _check(rewards: torch.Tensor, group_size: int, valid: torch.Tensor | None) -> torch.Tensor:
    if rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(
            f"rewards must be flat with a length divisible by group_size={group_size}, "
            f"got shape {tuple(rewards.shape)}"
        )
    if valid is None:
        return torch.ones_like(rewards, dtype=torch.bool)
    if valid.shape != rewards.shape:
        raise ValueError(f"valid {tuple(valid.shape)} and rewards {tuple(rewards.shape)} differ")
    return valid.bool()


def _masked_std(x: torch.Tensor, m: torch.Tensor, dim: int | None) -> torch.Tensor:
    """Unbiased std of x over entries where m; 0 when fewer than two entries."""
    mf = m.to(x.dtype)
    n = mf.sum() if dim is None else mf.sum(dim)
    mean = (x * mf).sum() / n.clamp(min=1) if dim is None else (x * mf).sum(dim) / n.clamp(min=1)
    centered = x - (mean if dim is None else mean.unsqueeze(dim))
    ss = (centered**2 * mf).sum() if dim is None else (centered**2 * mf).sum(dim)
    var = ss / (n - 1).clamp(min=1)
    return torch.where(n > 1, var.sqrt(), torch.zeros_like(var))


def grpo_advantages(
    rewards: torch.Tensor,
    group_size: int,
    valid: torch.Tensor | None = None,
    std: str = "group",
    eps: float = 1e-4,
) -> torch.Tensor:
    """Group-relative advantages; 0 for invalid trajectories.

    Group [1, 0, 0, 1]: mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = 0.57735,
    A = +-0.5 / (0.57735 + 1e-4) = +-0.86588.

    >>> grpo_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), 4).tolist()  # doctest: +ELLIPSIS
    [0.8658..., -0.8658..., -0.8658..., 0.8658...]
    >>> grpo_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), 4, std="none").tolist()
    [0.5, -0.5, -0.5, 0.5]
    """
    if std not in STD_MODES:
        raise ValueError(f"unknown advantage std mode {std!r}; known: {list(STD_MODES)}")
    valid = _check(rewards, group_size, valid)
    r = rewards.view(-1, group_size).to(torch.float64)
    m = valid.view(-1, group_size)
    mf = m.to(r.dtype)
    mean = (r * mf).sum(1, keepdim=True) / mf.sum(1, keepdim=True).clamp(min=1)
    adv = r - mean
    if std != "none":
        scale = _masked_std(r, m, dim=1).unsqueeze(1) if std == "group" else _masked_std(r, m, None)
        scale = scale + eps
        # a zero scale means every valid reward equals its mean: the deviation is already 0
        adv = adv / torch.where(scale > 0, scale, torch.ones_like(scale))
    adv = torch.where(m, adv, torch.zeros_like(adv))
    return adv.view(-1).to(rewards.dtype)


def zero_variance_groups(
    rewards: torch.Tensor, group_size: int, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Per group: True when its valid rewards are all equal (or fewer than two are valid).

    >>> zero_variance_groups(torch.tensor([1.0, 1.0, 0.0, 1.0]), 2).tolist()
    [True, False]
    """
    valid = _check(rewards, group_size, valid)
    r = rewards.view(-1, group_size)
    m = valid.view(-1, group_size)
    big = torch.finfo(r.dtype).max
    hi = torch.where(m, r, torch.full_like(r, -big)).amax(1)
    lo = torch.where(m, r, torch.full_like(r, big)).amin(1)
    return (m.sum(1) < 2) | (hi == lo)


AdvantageFn = Callable[..., torch.Tensor]
ADVANTAGES: dict[str, AdvantageFn] = {"grpo": grpo_advantages}


def get_advantage(name: str) -> AdvantageFn:
    if name not in ADVANTAGES:
        raise KeyError(f"unknown advantage estimator {name!r}; known: {sorted(ADVANTAGES)}")
    return ADVANTAGES[name]
