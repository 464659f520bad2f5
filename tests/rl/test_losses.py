"""Losses and aggregation against hand-computed values for every mode."""

from __future__ import annotations

import math

import pytest
import torch

from miva.rl.losses import aggregate, clipped_policy_loss, get_loss, k3_kl

# two sequences: 2 sampled tokens and 1 sampled token
MASK = torch.tensor([[1, 1, 0], [0, 1, 0]])
OLD = torch.zeros(2, 3)
NEW = torch.tensor([[math.log(1.5), math.log(0.5), 9.0], [0.0, math.log(1.1), 9.0]])
ADV = torch.tensor([1.0, -2.0])
# per-token losses (eps_low 0.2, eps_high 0.28):
#  seq 0, A=1:  rho 1.5 -> -min(1.5, 1.28) = -1.28 ; rho 0.5 -> -min(0.5, 0.8) = -0.5
#  seq 1, A=-2: rho 1.1 -> -min(-2.2, -2.2) = 2.2
# seq-mean-token-mean: ((-1.78)/2 + 2.2) / 2 = 0.655
# token-mean: (-1.78 + 2.2) / 3 = 0.14
# seq-mean-token-sum-norm (max_len 4): 0.42 / (2 * 4) = 0.0525
EXPECTED = {"seq-mean-token-mean": 0.655, "token-mean": 0.14, "seq-mean-token-sum-norm": 0.0525}


@pytest.mark.parametrize("agg", list(EXPECTED))
def test_clipped_loss_each_aggregation(agg):
    value, metrics = clipped_policy_loss(NEW, OLD, ADV, MASK, agg=agg, max_len=4)
    assert value.item() == pytest.approx(EXPECTED[agg], rel=1e-6)
    # clipped tokens: rho 1.5 with A>0 (high). rho 0.5 with A>0 is not clipped (min picks it).
    assert metrics["clip_frac_high"] == pytest.approx(1 / 3)
    assert metrics["clip_frac_low"] == 0.0


def test_gradient_is_zero_on_clipped_and_masked_tokens():
    new = NEW.clone().requires_grad_(True)
    value, _ = clipped_policy_loss(new, OLD, ADV, MASK, agg="token-mean")
    value.backward()
    g = new.grad
    assert g[0, 0] == 0.0  # clipped (rho 1.5 > 1.28, A > 0)
    # unclipped rho 0.5, A = 1: d/dlogp of -rho*A / 3 = -0.5 / 3
    assert g[0, 1].item() == pytest.approx(-0.5 / 3)
    assert g[0, 2] == 0.0 and g[1, 0] == 0.0 and g[1, 2] == 0.0  # masked tokens


def test_k3_kl_term():
    ref = torch.tensor([[math.log(2.0)]])
    value, metrics = clipped_policy_loss(
        torch.zeros(1, 1),
        torch.zeros(1, 1),
        torch.tensor([0.0]),
        torch.ones(1, 1),
        beta=0.5,
        ref_logp=ref,
    )
    # A = 0: loss = beta * (2 - log 2 - 1) = 0.5 * 0.306853
    assert value.item() == pytest.approx(0.5 * (1 - math.log(2)), rel=1e-6)
    assert metrics["kl"] == pytest.approx(1 - math.log(2), rel=1e-6)
    assert k3_kl(torch.tensor(0.3), torch.tensor(0.3)).item() == 0.0
    with pytest.raises(ValueError, match="ref_logp"):
        clipped_policy_loss(
            torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1), torch.ones(1, 1), beta=0.1
        )


@pytest.mark.parametrize("agg", list(EXPECTED))
def test_micro_batches_add_up_to_full_batch(agg):
    kw = dict(num_seqs=2.0, num_tokens=3.0, max_len=4)
    full, _ = clipped_policy_loss(NEW, OLD, ADV, MASK, agg=agg, **kw)
    parts = sum(
        clipped_policy_loss(
            NEW[i : i + 1], OLD[i : i + 1], ADV[i : i + 1], MASK[i : i + 1], agg=agg, **kw
        )[0]
        for i in range(2)
    )
    assert parts.item() == pytest.approx(full.item(), rel=1e-6)


def test_unknown_names():
    with pytest.raises(ValueError, match="known"):
        aggregate(torch.zeros(1, 1), torch.ones(1, 1), "sum")
    with pytest.raises(KeyError, match="known"):
        get_loss("gspo")
