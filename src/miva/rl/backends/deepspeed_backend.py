"""DeepSpeed backend: ZeRO-2 or ZeRO-3, bf16 on GPU, optional gradient checkpointing.

Launch on GPUs with ``torchrun --nproc-per-node N [--nnodes M ...] -m miva.cli train
--set grpo.training_backend=deepspeed``; every rank runs the same loop on its share of prompts. On
a CPU (tests) it runs with the gloo backend and fp32, one process or several.

The loss each micro-batch hands in is already normalised for the global batch (all
micro-batches of all ranks), so it is not divided again by the accumulation steps
(``scale_wrt_gas=False``), and it is multiplied by the world size because DeepSpeed
averages gradients over the data-parallel ranks; the optimizer steps once per batch at the
accumulation boundary. ZeRO-2 shards optimizer state and gradients; ZeRO-3 also shards
the parameters, which `gathered()` assembles on every rank for rollouts and saving.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch

from miva.rl.backends.torch_backend import enable_gradient_checkpointing, warmup_lambda
from miva.rl.distributed import World


def zero_config(
    stage: int,
    micro_batch_size: int,
    micro_batches: int,
    max_grad_norm: float,
    bf16: bool,
) -> dict[str, Any]:
    """The DeepSpeed config of a ZeRO stage (2 or 3)."""
    if stage not in (2, 3):
        raise ValueError(f"unknown ZeRO stage {stage}; known: [2, 3]")
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": False, "contiguous_gradients": True}
    if stage == 3:
        zero.update(stage3_gather_16bit_weights_on_model_save=True)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return {
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": micro_batches,
        "train_batch_size": micro_batch_size * micro_batches * world,
        "gradient_clipping": max_grad_norm,
        "bf16": {"enabled": bf16},
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def _init_distributed() -> None:
    import deepspeed
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    deepspeed.init_distributed(dist_backend=backend)


class DeepSpeedBackend:
    name = "deepspeed"

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
        micro_batch_size: int = 1,
        zero_stage: int = 2,
        gradient_checkpointing: bool = False,
        bf16: bool | None = None,
        world: World | None = None,
        **_: Any,
    ) -> None:
        import deepspeed

        _init_distributed()
        self.world = world or World()
        on_gpu = torch.cuda.is_available()
        bf16 = on_gpu if bf16 is None else bf16
        if gradient_checkpointing:
            enable_gradient_checkpointing(model)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_lambda(warmup_steps, total_steps, lr_decay, min_lr_ratio)
        )
        self.config = zero_config(zero_stage, micro_batch_size, micro_batches, max_grad_norm, bf16)
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=self.config
        )
        self.micro_batches = micro_batches
        self.device = self.engine.device
        self._pending = 0

    @property
    def module(self) -> Any:
        return self.engine.module

    @property
    def model(self) -> Any:
        return self.engine

    def micro_step(self, last: bool) -> contextlib.AbstractContextManager:
        """DeepSpeed decides itself when to reduce gradients (at the accumulation boundary)."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss * self.world.size, scale_wrt_gas=False)
        self._pending += 1
        if self._pending < self.micro_batches:
            self.engine.step()  # not a boundary: DeepSpeed only advances its counters

    def step(self) -> float:
        """The boundary step of the batch; returns the global gradient norm."""
        if self._pending != self.micro_batches:
            raise RuntimeError(
                f"{self._pending} micro-batches went backward but the engine expects {self.micro_batches}"
            )
        self.engine.step()
        self._pending = 0
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def gathered(self) -> contextlib.AbstractContextManager:
        """Inside: every parameter whole on every rank (ZeRO-3 gathers its partitions, read
        only; a collective, so every rank must enter). ZeRO-2 parameters are whole already."""
        if self.config["zero_optimization"]["stage"] != 3:
            return contextlib.nullcontext()
        import deepspeed

        return deepspeed.zero.GatheredParameters(list(self.module.parameters()), modifier_rank=None)

    def full_state_dict(self) -> dict[str, Any]:
        """HF-named weights of the whole model, on every rank (ZeRO-3: gathered, copied to CPU)."""
        with self.gathered():
            return {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}

    def save(self, folder: str) -> None:
        """Collective: every rank writes its optimizer (and ZeRO-3 parameter) shard."""
        self.engine.save_checkpoint(folder, tag="engine")

    def load(self, folder: str) -> None:
        """Collective: every rank reads back its own shard."""
        self.engine.load_checkpoint(folder, tag="engine")
