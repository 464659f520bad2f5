"""Single-process torch engine: AdamW, linear warm-up then a constant or decaying LR
(`rl/schedule.py`), gradient clipping."""

from __future__ import annotations

import math
from typing import Any

import torch


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


class TorchEngine:
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
        **_: Any,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device)
        if gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
            model.gradient_checkpointing_enable()
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_lambda(warmup_steps, total_steps, lr_decay, min_lr_ratio)
        )
        self.max_grad_norm = max_grad_norm

    @property
    def module(self) -> Any:
        return self.model

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self) -> float:
        """Clip, step and zero the gradients; returns the pre-clip gradient norm.

        A non-finite gradient norm skips the update (gradients dropped) and returns it."""
        params = [p for p in self.model.parameters() if p.requires_grad]
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

    def full_state_dict(self) -> dict[str, Any]:
        """HF-named weights of the whole model (what a rollout engine loads)."""
        return self.model.state_dict()

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def save(self, folder: str) -> None:
        torch.save(self.state_dict(), f"{folder}/engine.pt")

    def load(self, folder: str) -> None:
        self.load_state_dict(torch.load(f"{folder}/engine.pt", weights_only=False))
