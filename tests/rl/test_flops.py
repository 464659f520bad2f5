"""Model FLOPs of a GRPO update and MFU, against numbers worked out by hand."""

from __future__ import annotations

import pytest

from miva.rl.flops import (
    SequenceShape,
    Tower,
    forward_flops,
    mfu,
    peak_bf16_flops,
    tower_forward_flops,
    update_flops,
)


def test_a_dense_decoder_costs_6n_per_token_plus_attention():
    # 36 layers of width 2048 with 2.77e9 matmul weights (about Qwen2.5-3B's blocks), one
    # sequence of 1,000 tokens: forward = 2 * 2.77e9 * 1000 + 4 * 36 * 2048 * 1000^2
    text = Tower(layers=36, width=2048, matmul_params=2_770_000_000)
    fwd = tower_forward_flops(text, [1000])
    assert fwd == pytest.approx(5.54e12 + 2.94912e11)
    # training = 3 forwards: 6N per token (1.662e13) plus 3x the attention term
    assert update_flops(text, 0, [SequenceShape(1000, 0)]) == pytest.approx(3 * fwd)


def test_lm_head_counts_only_response_positions_and_vision_counts_patches():
    text = Tower(layers=1, width=8, matmul_params=0)
    vision = Tower(layers=2, width=4, matmul_params=50)
    seqs = [SequenceShape(tokens=10, head_positions=3, image_patches=[16, 4])]
    # text attention 4*1*8*100 = 3200; head 2*8*100*3 = 4800;
    # vision: matmul 2*50*20 = 2000, attention 4*2*4*(256 + 16) = 8704
    assert forward_flops(text, 100, seqs, vision) == 3200 + 4800 + 2000 + 8704


def test_mu_and_reference_add_forward_passes():
    t = Tower(layers=1, width=1, matmul_params=1)
    seqs = [SequenceShape(tokens=1, head_positions=0)]
    f = forward_flops(t, 0, seqs)  # 2 + 4 = 6
    assert f == 6
    assert update_flops(t, 0, seqs, mu=1) == 18
    assert update_flops(t, 0, seqs, mu=3) == (9 + 1) * 6  # + the stored old log-probs
    assert update_flops(t, 0, seqs, mu=1, reference=True) == (3 + 1) * 6


def test_mfu_divides_by_time_devices_and_the_devices_peak():
    assert mfu(989e12, 2.0, 989e12) == 0.5
    assert mfu(8 * 989e12, 1.0, 989e12, devices=8) == 1.0
    assert peak_bf16_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_bf16_flops("NVIDIA H100 NVL") == 835e12
    assert peak_bf16_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_bf16_flops("Tesla T4") is None
