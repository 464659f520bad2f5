"""The policy side of a GRPO update: micro-batches of trajectories and their loss.

A `PolicyBatch` is a `forward.TokenBatch` (N trajectories right-padded to one length T;
per-token tensors *target-aligned*: column t scores token ``input_ids[:, t + 1]``, shape
``[N, T - 1]``, so ``loss_mask[:, t] = trajectory.loss_mask[t + 1]``) plus what the loss
needs: advantages, old and reference log-probs. Log-probs come from the one function
`miva.agent.forward.token_logprobs`, as in SFT.

`micro_batches` cuts a step's trajectories into micro-batches of similar lengths (less
padding; the loss normalisers are batch-wide, so the order does not change the loss).
`micro_batch_loss` is the one function that turns (model, micro-batch, settings) into a
loss: the GRPO loop and the TRL parity test both call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch

from miva.agent.forward import TokenBatch, collate, token_logprobs
from miva.rl.losses import get_loss, logp_mismatch, truncated_is_weights

ROLLOUT_CORRECTIONS = ("off", "token-tis")


@dataclass(kw_only=True)
class PolicyBatch(TokenBatch):
    advantages: torch.Tensor  # [N] float
    old_logp: torch.Tensor | None = None  # [N, T-1]
    ref_logp: torch.Tensor | None = None  # [N, T-1]


def policy_batch(
    trajectories: Sequence[Any],
    advantages: Sequence[float] | torch.Tensor,
    valid: Sequence[bool],
    processor: Any,
    vision_cache: Any = None,
) -> PolicyBatch:
    """Collate trajectories with their advantages; invalid (masked) trajectories get an
    all-zero loss mask. `vision_cache`: the rollout engine's image features, reused by
    passes without gradients while the weights are unchanged."""
    tokens = collate(trajectories, processor, valid=valid, vision_cache=vision_cache)
    adv = torch.as_tensor(advantages, dtype=torch.float32)
    return PolicyBatch(advantages=adv, **{f.name: getattr(tokens, f.name) for f in fields(tokens)})


def micro_batches(
    trajectories: Sequence[Any],
    advantages: torch.Tensor,
    valid: Sequence[bool],
    size: int,
    processor: Any,
    vision_cache: Any = None,
) -> list[PolicyBatch]:
    """Micro-batches of at most `size` trajectories, ``ceil(len / size)`` of them as the
    training engines expect. A group's trajectories stay together (the log-prob pass runs
    their shared prompt once: `agent.packing`); groups go in order of length and each
    group's members by length, so a micro-batch pads to near neighbours. The loss
    normalisers are batch-wide, so the order does not change the loss."""
    groups: dict[Any, list[int]] = {}
    for i, t in enumerate(trajectories):
        groups.setdefault(t.sample_id, []).append(i)

    def length(i: int) -> int:
        return len(trajectories[i].token_ids)

    ordered = sorted(groups.values(), key=lambda g: max(length(i) for i in g))
    order = [i for g in ordered for i in sorted(g, key=length)]
    out = []
    for start in range(0, len(order), size):
        idx = order[start : start + size]
        out.append(
            policy_batch(
                [trajectories[i] for i in idx],
                advantages[idx],
                [valid[i] for i in idx],
                processor,
                vision_cache,
            )
        )
    return out


@dataclass
class LossSettings:
    """What `micro_batch_loss` needs from the train config, plus batch-wide normalisers.

    ``num_seqs`` / ``num_tokens`` are the counts of the *global* batch (summed over every
    micro-batch and, with several training processes, over every rank), so the micro-batch
    losses of all ranks add up to the loss of one process on the union batch.
    ``rollout_correction``: ``off`` or ``token-tis`` (truncated importance sampling with
    weights capped at ``rollout_cap``; see `losses.truncated_is_weights`).
    """

    loss: str = "clipped"
    agg: str = "token-mean"
    eps_low: float = 0.2
    eps_high: float = 0.28
    beta: float = 0.0
    kl_ratio_correction: bool = False
    temperature: float = 1.0
    max_len: int | None = None
    num_seqs: float | None = None  # trajectories in the whole batch that take part
    num_tokens: float | None = None  # sampled tokens of those trajectories
    rollout_correction: str = "off"
    rollout_cap: float = 2.0


def micro_batch_loss(
    model: Any,
    batch: PolicyBatch,
    settings: LossSettings,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Forward one micro-batch and return its share of the batch loss and metrics.

    When ``batch.old_logp`` is None the update is on-policy (mu = 1): the old log-probs are
    the current ones, detached, so the ratio is 1 and only the advantage weights the gradient.

    With ``batch.rollout_logp`` (what the rollout engine reported for the sampled tokens) the
    metrics include the trainer-rollout mismatch of the old log-probs, and with
    ``settings.rollout_correction == "token-tis"`` each token's policy-gradient term is
    weighted by min(exp(logp_old - logp_rollout), C).
    """
    if settings.rollout_correction not in ROLLOUT_CORRECTIONS:
        raise ValueError(
            f"unknown rollout correction {settings.rollout_correction!r}; "
            f"known: {list(ROLLOUT_CORRECTIONS)}"
        )
    logp, entropy = token_logprobs(model, batch, settings.temperature, with_entropy=True)
    old = logp.detach() if batch.old_logp is None else batch.old_logp
    extra: dict[str, float] = {}
    is_weights = None
    if batch.rollout_logp is not None:
        extra.update(logp_mismatch(old, batch.rollout_logp, batch.loss_mask))
        if settings.rollout_correction == "token-tis":
            is_weights, tis = truncated_is_weights(
                old, batch.rollout_logp, batch.loss_mask, settings.rollout_cap
            )
            extra.update(tis)
    value, metrics = get_loss(settings.loss)(
        logp,
        old,
        batch.advantages.to(logp.dtype),
        batch.loss_mask,
        eps_low=settings.eps_low,
        eps_high=settings.eps_high,
        beta=settings.beta,
        ref_logp=batch.ref_logp,
        agg=settings.agg,
        num_seqs=settings.num_seqs,
        num_tokens=settings.num_tokens,
        max_len=settings.max_len,
        kl_ratio_correction=settings.kl_ratio_correction,
        is_weights=is_weights,
    )
    metrics.update(extra)
    m = batch.loss_mask
    if entropy is not None:
        metrics["entropy"] = float((entropy * m).sum() / m.sum().clamp(min=1))
    metrics["tokens"] = float(m.sum())
    return value, metrics
