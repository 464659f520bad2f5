"""Training backends (`grpo.training_backend`) behind one small interface: the GRPO and SFT
loops call ``backward(loss)`` per micro-batch and ``step()`` once per batch, whatever runs
underneath.

- `torch` (`TorchBackend`): one process, CPU or one GPU, AdamW + warm-up schedule.
- `deepspeed` (`DeepSpeedBackend`): ZeRO-2/3, bf16 on GPU, gradient checkpointing; launched
  with ``torchrun`` for several GPUs and nodes (a single process on CPU with gloo in tests).
"""

from __future__ import annotations

from typing import Any


def build_backend(kind: str, model: Any, **kwargs: Any):
    """`torch` or `deepspeed`; unknown names fail listing the known ones."""
    if kind == "torch":
        from miva.rl.backends.torch_backend import TorchBackend

        return TorchBackend(model, **kwargs)
    if kind == "deepspeed":
        from miva.rl.backends.deepspeed_backend import DeepSpeedBackend

        return DeepSpeedBackend(model, **kwargs)
    raise ValueError(f"unknown training backend {kind!r}; known: ['deepspeed', 'torch']")
