"""Model FLOPs of a GRPO update and its model FLOPs utilisation (MFU); pure arithmetic.

Conventions (those of Megatron-LM and PaLM, so figures compare across reports):
- a matmul with a weight of N parameters costs 2 N FLOPs per token forward;
- attention costs 4 * d * s FLOPs per token per layer forward (scores QK^T and the weighted
  sum of V over a context of s tokens, width d = heads * head_dim), counted in full although
  a causal kernel computes about half of it;
- backward costs twice the forward; recomputation under gradient checkpointing is not
  counted (MFU counts the model's FLOPs, not the hardware's);
- the LM head (2 * d * V per position) counts only at the positions where the trainer
  computes logits (the response; prompts skip the head).

MFU = model FLOPs of the step / (seconds * devices * peak FLOP/s of one device).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Dense bf16 peak of one device, TFLOP/s, from the vendors' data sheets (no sparsity).
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,  # SXM5
    "A100": 312.0,
}


@dataclass(frozen=True)
class Tower:
    """A stack of transformer blocks: layers, width and the parameters of its matmuls."""

    layers: int
    width: int
    matmul_params: int  # weights that multiply every token (blocks, projections; no embedding)


@dataclass(frozen=True)
class SequenceShape:
    """One trajectory as the trainer's forward sees it."""

    tokens: int  # text tokens, image placeholders included
    head_positions: int  # positions whose logits the trainer computes
    image_patches: Sequence[int] = ()  # vision-tower patches of each image


def tower_forward_flops(tower: Tower, lengths: Sequence[int]) -> float:
    """Forward FLOPs of `tower` over sequences of the given lengths (each attends to itself).

    2 layers, width 4, 100 matmul parameters, one sequence of 3 tokens:
    2 * 100 * 3 + 4 * 2 * 4 * 3 * 3 = 600 + 288 = 888.

    >>> tower_forward_flops(Tower(layers=2, width=4, matmul_params=100), [3])
    888.0
    """
    tokens = sum(lengths)
    attention = 4.0 * tower.layers * tower.width * sum(s * s for s in lengths)
    return 2.0 * tower.matmul_params * tokens + attention


def forward_flops(
    text: Tower, vocab: int, seqs: Sequence[SequenceShape], vision: Tower | None = None
) -> float:
    """Forward FLOPs of the policy over a batch of trajectories: decoder, LM head, vision."""
    total = tower_forward_flops(text, [s.tokens for s in seqs])
    total += 2.0 * text.width * vocab * sum(s.head_positions for s in seqs)
    if vision is not None:
        total += tower_forward_flops(vision, [p for s in seqs for p in s.image_patches])
    return total


def update_flops(
    text: Tower,
    vocab: int,
    seqs: Sequence[SequenceShape],
    mu: int = 1,
    reference: bool = False,
    vision: Tower | None = None,
) -> float:
    """Model FLOPs of one GRPO update: mu forward+backward passes (3x a forward), plus one
    forward for the stored old log-probs when mu > 1 and one for the reference (beta > 0).

    One layer of width 2 with 10 matmul parameters, vocabulary 5, 4 tokens, 1 head position:
    forward = 2*10*4 + 4*1*2*4*4 + 2*2*5*1 = 80 + 128 + 20 = 228; update = 3 * 228 = 684;
    mu = 2 with a reference: (3*2 + 1 + 1) * 228 = 1824.

    >>> t, seqs = Tower(layers=1, width=2, matmul_params=10), [SequenceShape(4, 1)]
    >>> forward_flops(t, 5, seqs), update_flops(t, 5, seqs), update_flops(t, 5, seqs, 2, True)
    (228.0, 684.0, 1824.0)
    """
    f = forward_flops(text, vocab, seqs, vision)
    passes = 3.0 * mu + (1.0 if mu > 1 else 0.0) + (1.0 if reference else 0.0)
    return passes * f


def mfu(flops: float, seconds: float, peak_flops_per_device: float, devices: int = 1) -> float:
    """Model FLOPs utilisation: 4.945e14 FLOPs in 1 s on one 989 TFLOP/s device -> 0.5.

    >>> mfu(4.945e14, 1.0, 989e12)
    0.5
    """
    return flops / (seconds * devices * peak_flops_per_device)


def peak_bf16_flops(device_name: str) -> float | None:
    """The data-sheet dense bf16 peak (FLOP/s) of a device named like torch reports it, e.g.
    'NVIDIA H100 80GB HBM3' -> 989e12; None when unknown (pass --peak-tflops).

    >>> peak_bf16_flops("NVIDIA H100 PCIe") / 1e12, peak_bf16_flops("NVIDIA H200") / 1e12
    (756.0, 989.0)
    >>> peak_bf16_flops("cpu") is None
    True
    """
    for key, tflops in PEAK_BF16_TFLOPS.items():  # more specific names first
        if all(part in device_name for part in key.split()):
            return tflops * 1e12
    return None
