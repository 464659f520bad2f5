"""Torch engine: AdamW, linear warm-up then a constant or decaying LR (`rl/schedule.py`),
gradient clipping; one process, or DistributedDataParallel when torchrun starts several.

Under DDP every rank holds the whole model and optimizer state; gradients are all-reduced
(averaged) in the backward pass of the last micro-batch of each optimizer step, so every
rank applies the same update and the parameters stay identical without broadcasts.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from typing import Any

import torch

from miva.rl.distributed import World


def warmup_lambda(
    warmup_steps: int,
    total_steps: int | None = None,
    decay: str = "constant",
    min_ratio: float = 0.1,
):
    """LR multiplier: (step + 1) / warmup for the first `warmup_steps` steps, then 1, or a
    cosine / linear decay to `min_ratio` at `total_steps` (`rl/schedule.py`)."""
    from miva.rl.schedule import schedule

    return schedule(warmup_steps, total_steps, decay, min_ratio)  # type: ignore[arg-type]


def enable_gradient_checkpointing(model: Any) -> None:
    """Non-reentrant checkpointing: the variant that works with DDP and ZeRO hooks.
    (transformers renamed the method in 5.x; older 5.x releases only have the first name.)"""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    elif hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


class TorchBackend:
    name = "torch"

    def __init__(
        self,
        model: Any,
        *,
        lr: float,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        total_steps: int | None = None,
        lr_decay: str = "constant",
        min_lr_ratio: float = 0.1,
        max_grad_norm: float = 1.0,
        micro_batches: int = 1,
        gradient_checkpointing: bool = False,
        device: str | torch.device = "cpu",
        world: World | None = None,
        **_: Any,
    ) -> None:
        self.world = world or World()
        self.device = torch.device(device)
        self._module = model.to(self.device)
        if gradient_checkpointing:
            enable_gradient_checkpointing(model)
        self.model = model
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(model, device_ids=ids)
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_lambda(warmup_steps, total_steps, lr_decay, min_lr_ratio)
        )
        self.max_grad_norm = max_grad_norm
        self.micro_batches = micro_batches

    @property
    def module(self) -> Any:
        """The bare model (rollouts, saving); `model` is what the loss forward goes through."""
        return self._module

    @contextlib.contextmanager
    def micro_step(self, last: bool) -> Iterator[None]:
        """Wrap the forward and backward of one micro-batch: DDP all-reduces gradients only in
        the last one of an optimizer step (the earlier ones accumulate locally)."""
        if self.world.distributed and not last:
            with self.model.no_sync():
                yield
        else:
            yield

    def backward(self, loss: torch.Tensor) -> None:
        """`loss` is this rank's share of the global batch loss (normalised by global counts).
        DDP averages gradients over ranks; scaling by the world size makes that average the sum
        of the shares, i.e. the gradient of the global loss."""
        (loss * self.world.size).backward()

    def step(self) -> float:
        """Clip, step and zero the gradients; returns the pre-clip gradient norm.

        A non-finite gradient norm skips the update (gradients dropped) and returns it. The
        gradients are all-reduced, so every rank sees the same norm and decides the same."""
        params = [p for p in self._module.parameters() if p.requires_grad]
        norm = float(torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm))
        if math.isfinite(norm):
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return norm

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def gathered(self) -> contextlib.AbstractContextManager:
        """Every parameter is whole on every rank already (nothing to gather)."""
        return contextlib.nullcontext()

    def full_state_dict(self) -> dict[str, Any]:
        """HF-named weights of the whole model (what a rollout engine loads)."""
        return self._module.state_dict()

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": {k: v.detach().cpu() for k, v in self._module.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def save(self, folder: str) -> None:
        """Replicated state: the first rank of each node writes it (once on shared storage
        too: identical bytes, each written under its own name and renamed into place)."""
        if self.world.local_rank == 0:
            tmp = f"{folder}/engine.pt.rank{self.world.rank}"
            torch.save(self.state_dict(), tmp)
            os.replace(tmp, f"{folder}/engine.pt")

    def load(self, folder: str) -> None:
        state = torch.load(f"{folder}/engine.pt", weights_only=False, map_location="cpu")
        self.load_state_dict(state)
