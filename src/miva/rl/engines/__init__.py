"""Training engines behind one small interface (`Engine`): the GRPO and SFT loops call
``backward(loss)`` per micro-batch and ``step()`` once per batch, whatever runs underneath.

- `torch` (`TorchEngine`): one process, CPU or one GPU, AdamW + warm-up schedule.
- `deepspeed` (`DeepSpeedEngine`): ZeRO-2/3, bf16 on GPU, gradient checkpointing; launched
  with ``torchrun`` for several GPUs and nodes (a single process on CPU with gloo in tests).
"""

from __future__ import annotations

from typing import Any


def build_engine(kind: str, model: Any, **kwargs: Any):
    """`torch` or `deepspeed`; unknown names fail listing the known ones."""
    if kind == "torch":
        from miva.rl.engines.torch_engine import TorchEngine

        return TorchEngine(model, **kwargs)
    if kind == "deepspeed":
        from miva.rl.engines.deepspeed_engine import DeepSpeedEngine

        return DeepSpeedEngine(model, **kwargs)
    raise ValueError(f"unknown engine {kind!r}; known: ['deepspeed', 'torch']")
