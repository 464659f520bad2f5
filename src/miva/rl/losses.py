"""Policy losses (registered by name) and token aggregation (a separate function).

Per sampled token t of trajectory i (``mask[i, t] == 1``):

    rho   = exp(logp_new - logp_old)
    loss  = -min(rho * A_i, clip(rho, 1 - eps_low, 1 + eps_high) * A_i)
    loss += beta * (exp(d) - d - 1),  d = logp_ref - logp_new      (k3 KL, only when beta > 0)

With truncated importance sampling (``is_weights``, see `truncated_is_weights`) the clipped
policy-gradient term of each token is multiplied by w = min(exp(logp_old - logp_rollout), C),
a constant (no gradient flows through it); the KL term is not reweighted.

Aggregation modes (`aggregate`), written so that micro-batches add up to the full-batch loss
when the caller passes the batch-wide normalisers:

- ``seq-mean-token-mean``: mean over each sequence's tokens, then / number of sequences (GRPO);
- ``token-mean``: sum over all tokens / number of tokens in the batch (DAPO);
- ``seq-mean-token-sum-norm``: sum over all tokens / (number of sequences * max_len) (Dr.GRPO).

Each loss returns ``(value, metrics)`` with detached float metrics.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

AGG_MODES = ("seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm")


def aggregate(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    mode: str,
    *,
    num_seqs: float | None = None,
    num_tokens: float | None = None,
    max_len: int | None = None,
) -> torch.Tensor:
    """Reduce a ``[B, T]`` per-token loss over ``mask`` to a scalar.

    ``num_seqs`` / ``num_tokens`` default to this batch's (rows with any token / masked tokens);
    pass the whole batch's counts when the batch is split into micro-batches.

    per_token [[1, 2, 3], [4, 0, 0]], mask [[1, 1, 1], [1, 0, 0]]:
    seq-mean-token-mean = (2 + 4) / 2 = 3; token-mean = 10 / 4 = 2.5;
    seq-mean-token-sum-norm with max_len 5 = 10 / (2 * 5) = 1.

    >>> x = torch.tensor([[1.0, 2, 3], [4, 0, 0]]); m = torch.tensor([[1, 1, 1], [1, 0, 0]])
    >>> [aggregate(x, m, k, max_len=5).item() for k in AGG_MODES]
    [3.0, 2.5, 1.0]
    """
    m = mask.to(per_token.dtype)
    summed = per_token * m
    if num_seqs is None:
        num_seqs = float((m.sum(-1) > 0).sum().clamp(min=1))
    if mode == "seq-mean-token-mean":
        return (summed.sum(-1) / m.sum(-1).clamp(min=1)).sum() / num_seqs
    if mode == "token-mean":
        if num_tokens is None:
            num_tokens = float(m.sum().clamp(min=1))
        return summed.sum() / num_tokens
    if mode == "seq-mean-token-sum-norm":
        if not max_len:
            raise ValueError(
                "seq-mean-token-sum-norm needs max_len (the constant length normaliser)"
            )
        return summed.sum() / (num_seqs * max_len)
    raise ValueError(f"unknown loss aggregation {mode!r}; known: {list(AGG_MODES)}")


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k3 estimator of KL(pi || ref) per token: exp(d) - d - 1 with d = ref - new.

    d = log 2: 2 - 0.693147 - 1 = 0.306853.

    >>> round(k3_kl(torch.tensor(0.0), torch.tensor(0.6931472)).item(), 5)
    0.30685
    """
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    m = mask.to(x.dtype)
    return float((x * m).sum() / m.sum().clamp(min=1))


def clipped_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
    agg: str = "token-mean",
    num_seqs: float | None = None,
    num_tokens: float | None = None,
    max_len: int | None = None,
    kl_ratio_correction: bool = False,
    is_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO-style clipped surrogate with separate low/high epsilon and optional k3 KL.

    ``is_weights`` (``[B, T]``, detached): per-token rollout-correction weights that scale
    the policy-gradient term (truncated importance sampling); None = 1.

    ``kl_ratio_correction`` multiplies the k3 term by rho (DeepSeek-V3.2; TRL's
    ``use_bias_correction_kl``), which makes its gradient unbiased off-policy.

    ``logp``/``old_logp``/``ref_logp``/``mask``: ``[B, T]``; ``advantages``: ``[B]``.

    One token, A = 1, rho = e^0.5 = 1.6487 > 1.28: loss = -min(1.6487, 1.28) = -1.28.

    >>> v, m = clipped_policy_loss(torch.tensor([[0.5]]), torch.tensor([[0.0]]),
    ...                            torch.tensor([1.0]), torch.tensor([[1]]))
    >>> round(v.item(), 4), m["clip_frac_high"]
    (-1.28, 1.0)
    """
    adv = advantages.unsqueeze(-1).to(logp.dtype)
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    per_token = -torch.min(ratio * adv, clipped * adv)
    if is_weights is not None:
        per_token = per_token * is_weights.detach().to(per_token.dtype)
    metrics: dict[str, float] = {}
    if beta > 0:
        if ref_logp is None:
            raise ValueError("beta > 0 needs ref_logp (log-probs of the frozen reference model)")
        kl = k3_kl(logp, ref_logp)
        per_token = per_token + beta * (kl * ratio if kl_ratio_correction else kl)
        metrics["kl"] = _masked_mean(kl.detach(), mask)
    value = aggregate(
        per_token, mask, agg, num_seqs=num_seqs, num_tokens=num_tokens, max_len=max_len
    )
    with torch.no_grad():
        low = (ratio < 1 - eps_low) & (adv < 0)
        high = (ratio > 1 + eps_high) & (adv > 0)
        metrics["clip_frac_low"] = _masked_mean(low.float(), mask)
        metrics["clip_frac_high"] = _masked_mean(high.float(), mask)
        metrics["clip_frac"] = metrics["clip_frac_low"] + metrics["clip_frac_high"]
        metrics["ratio_mean"] = _masked_mean(ratio, mask)
        metrics["approx_kl_old"] = _masked_mean(0.5 * log_ratio**2, mask)
    return value, metrics


# ----------------------------------------------------------------------------- rollout vs trainer


def logp_mismatch(
    trainer_logp: torch.Tensor, rollout_logp: torch.Tensor, mask: torch.Tensor
) -> dict[str, float]:
    """Mean and max of |logp_trainer - logp_rollout| over the masked (sampled) tokens.

    The rollout engine (vLLM, or generate with a KV cache) and the trainer's forward pass
    score the same tokens with different kernels and batch shapes; this is how far apart
    they are. Tokens [a, b]: |-1.0 - -1.5| = 0.5 and |-2.0 - -2.0| = 0.

    >>> logp_mismatch(torch.tensor([[-1.0, -2.0, 9.0]]), torch.tensor([[-1.5, -2.0, 0.0]]),
    ...               torch.tensor([[1, 1, 0]]))
    {'logp_mismatch_mean': 0.25, 'logp_mismatch_max': 0.5}
    """
    m = mask.bool()
    diff = (trainer_logp.detach().float() - rollout_logp.float()).abs()
    picked = diff[m]
    if picked.numel() == 0:
        return {"logp_mismatch_mean": 0.0, "logp_mismatch_max": 0.0}
    return {
        "logp_mismatch_mean": float(picked.mean()),
        "logp_mismatch_max": float(picked.max()),
    }


def truncated_is_weights(
    trainer_logp: torch.Tensor, rollout_logp: torch.Tensor, mask: torch.Tensor, cap: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """Token-level truncated importance sampling: w = min(exp(logp_trainer - logp_rollout), cap).

    The samples came from the rollout engine's distribution, not the trainer's; weighting
    each token by the ratio corrects the policy gradient, and the cap C bounds its variance
    (Yao et al. 2025, "Your efficient RL framework secretly brings you off-policy RL
    training"; verl ``rollout_correction``). `trainer_logp` is the trainer's log-prob of the
    policy that sampled (the "old" policy), so the weight is a constant of the update.

    Log-ratios [0, log 3, -log 2] with C = 2: weights [1, 2 (clipped from 3), 0.5].

    >>> w, m = truncated_is_weights(torch.tensor([[0.0, 1.0986123, -0.6931472]]),
    ...                             torch.zeros(1, 3), torch.ones(1, 3), cap=2.0)
    >>> [round(x, 4) for x in w[0].tolist()], round(m["tis_clip_frac"], 4)
    ([1.0, 2.0, 0.5], 0.3333)
    """
    log_ratio = (trainer_logp.detach().float() - rollout_logp.float()).clamp(max=60.0)
    raw = torch.exp(log_ratio)
    weights = raw.clamp(max=cap)
    m = mask.to(weights.dtype)
    n = m.sum().clamp(min=1)
    metrics = {
        "tis_weight_mean": float((weights * m).sum() / n),
        "tis_clip_frac": float(((raw > cap).to(m.dtype) * m).sum() / n),
    }
    return weights * m, metrics


LossFn = Callable[..., tuple[torch.Tensor, dict[str, float]]]
LOSSES: dict[str, LossFn] = {"clipped": clipped_policy_loss}


def get_loss(name: str) -> LossFn:
    if name not in LOSSES:
        raise KeyError(f"unknown policy loss {name!r}; known: {sorted(LOSSES)}")
    return LOSSES[name]
