"""The policy side of a GRPO update: a padded batch of trajectories, its forward, its loss.

A `PolicyBatch` holds N trajectories right-padded to one length T. Per-token tensors that
score targets are *target-aligned*: column t scores token ``input_ids[:, t + 1]`` (shape
``[N, T - 1]``), so ``loss_mask[:, t] = trajectory.loss_mask[t + 1]``.

`micro_batch_loss` is the one function that turns (model, rows, advantages, old and
reference log-probs) into a loss: the GRPO loop and the TRL parity test both call it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from miva.rl.losses import (
    get_loss,
    logp_mismatch,
    token_entropy,
    token_logprobs,
    truncated_is_weights,
)

ForwardFn = Callable[[Any, "PolicyBatch"], torch.Tensor]
ROLLOUT_CORRECTIONS = ("off", "token-tis")


@dataclass
class PolicyBatch:
    input_ids: torch.Tensor  # [N, T] long
    attention_mask: torch.Tensor  # [N, T] long
    loss_mask: torch.Tensor  # [N, T-1] float, target-aligned
    advantages: torch.Tensor  # [N] float
    old_logp: torch.Tensor | None = None  # [N, T-1]
    ref_logp: torch.Tensor | None = None  # [N, T-1]
    rollout_logp: torch.Tensor | None = None  # [N, T-1]: the rollout engine's sampled log-probs
    trajectories: list[Any] = field(default_factory=list)
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # pixel_values, image_grid_thw, ...

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def rows(self, start: int, end: int) -> PolicyBatch:
        def cut(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x[start:end]

        return replace(
            self,
            input_ids=self.input_ids[start:end],
            attention_mask=self.attention_mask[start:end],
            loss_mask=self.loss_mask[start:end],
            advantages=self.advantages[start:end],
            old_logp=cut(self.old_logp),
            ref_logp=cut(self.ref_logp),
            rollout_logp=cut(self.rollout_logp),
            trajectories=self.trajectories[start:end],
        )

    def to(self, device: torch.device | str) -> PolicyBatch:
        def mv(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.to(device)

        return replace(
            self,
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            loss_mask=self.loss_mask.to(device),
            advantages=self.advantages.to(device),
            old_logp=mv(self.old_logp),
            ref_logp=mv(self.ref_logp),
            rollout_logp=mv(self.rollout_logp),
            model_kwargs={k: v.to(device) for k, v in self.model_kwargs.items()},
        )


def collate(
    trajectories: Sequence[Any], advantages: Sequence[float], pad_id: int, valid: Sequence[bool]
) -> PolicyBatch:
    """Right-pad trajectories into a batch; invalid (masked) trajectories get an all-zero loss mask."""
    n = len(trajectories)
    length = max(len(t.token_ids) for t in trajectories)
    ids = torch.full((n, length), pad_id, dtype=torch.long)
    attn = torch.zeros((n, length), dtype=torch.long)
    mask = torch.zeros((n, length), dtype=torch.float32)
    for i, traj in enumerate(trajectories):
        k = len(traj.token_ids)
        ids[i, :k] = torch.tensor(traj.token_ids, dtype=torch.long)
        attn[i, :k] = 1
        if valid[i]:
            mask[i, :k] = torch.tensor(traj.loss_mask, dtype=torch.float32)
    return PolicyBatch(
        input_ids=ids,
        attention_mask=attn,
        loss_mask=mask[:, 1:],
        advantages=torch.tensor(list(advantages), dtype=torch.float32),
        trajectories=list(trajectories),
    )


def text_logits(model: Any, batch: PolicyBatch, keep: int = 0) -> torch.Tensor:
    """Logits of the padded batch (images through ``batch.model_kwargs``): ``[N, T, V]``, or
    only the last `keep` positions when ``keep > 0`` (the LM head is skipped for the rest)."""
    extra = dict(batch.model_kwargs)
    if "pixel_values" in extra:
        dtype = next(p for p in model.parameters()).dtype
        extra["pixel_values"] = extra["pixel_values"].to(dtype)
    if keep:
        extra["logits_to_keep"] = keep
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **extra).logits


def forward_logprobs(
    model: Any,
    batch: PolicyBatch,
    logits_fn: Any = text_logits,
    temperature: float = 1.0,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Target-aligned log-probs ``[N, T-1]`` (and entropies) at the sampling temperature.

    Only positions from the first scored target on go through the LM head (prompts are
    long, answers short); earlier columns are 0 and carry no loss mask.
    """
    width = batch.input_ids.shape[1]
    scored = batch.loss_mask.sum(0).nonzero()
    start = int(scored[0]) if len(scored) else width - 2  # first target column with a token
    logits = logits_fn(model, batch, width - start)[:, :-1]  # positions start .. T-2
    if temperature and temperature != 1.0:
        logits = logits / temperature
    targets = batch.input_ids[:, start + 1 :]
    part = token_logprobs(logits, targets)
    logp = torch.nn.functional.pad(part, (start, 0))
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = torch.nn.functional.pad(token_entropy(logits), (start, 0))
    return logp, entropy


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
    logits_fn: ForwardFn = text_logits,
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
    logp, entropy = forward_logprobs(
        model, batch, logits_fn, settings.temperature, with_entropy=True
    )
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
