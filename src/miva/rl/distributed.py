"""Data parallelism for the trainers: who this process is, and the few collectives GRPO needs.

`init_distributed()` reads the torchrun environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) and joins the process group once: NCCL
with each rank on its local GPU (``cuda:LOCAL_RANK``), gloo on CPU. Without torchrun it
returns a world of one and every helper below is the identity, so the single-process path
runs the same code.

The helpers move small Python values (counts, metric sums, per-trajectory records), never
activations or weights; those travel through DDP / DeepSpeed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from miva.errors import ConfigError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints' shared files, the model folder, metrics and MLflow."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def device(self) -> str:
        """The local rank's GPU, or the CPU."""
        import torch

        return f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"


def world_from_env() -> World:
    """The world torchrun describes (a world of one when not launched by torchrun)."""
    return World(
        rank=int(os.environ.get("RANK", "0")),
        size=int(os.environ.get("WORLD_SIZE", "1")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def init_distributed() -> World:
    """Join the process group once (NCCL on GPUs, gloo on CPU) and pin the local GPU."""
    import torch
    import torch.distributed as dist

    world = world_from_env()
    if torch.cuda.is_available():
        torch.cuda.set_device(world.local_rank)
    if world.distributed and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend, rank=world.rank, world_size=world.size)
    return world


def split_evenly(total: int, world: World, what: str) -> int:
    """This rank's share of `total` items; every rank gets the same number.

    >>> split_evenly(8, World(rank=1, size=4), "grpo.prompts_per_step")
    2
    """
    if total % world.size:
        raise ConfigError(
            f"{what} = {total} is not divisible by the {world.size} training processes; "
            f"pick a multiple of {world.size}"
        )
    return total // world.size


def _active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sum over ranks (float64, so counts stay exact)."""
    if not _active():
        return [float(v) for v in values]
    import torch
    import torch.distributed as dist

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def all_max(values: Sequence[float]) -> list[float]:
    """Element-wise maximum over ranks."""
    if not _active():
        return [float(v) for v in values]
    import torch
    import torch.distributed as dist

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.cpu().tolist()


def all_gather_lists(items: list[Any]) -> list[Any]:
    """Concatenate every rank's list in rank order (small picklable items only)."""
    if not _active():
        return list(items)
    import torch.distributed as dist

    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, items)
    return [x for part in out for x in part]


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on at least one."""
    return all_max([1.0 if flag else 0.0])[0] > 0


def barrier() -> None:
    if _active():
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s value on every rank."""
    if not _active():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def _device():
    """Collectives run where the backend wants their tensors: the GPU for NCCL."""
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def stream_seed(*parts: int | str) -> int:
    """A 31-bit seed for one random stream named by `parts`, e.g. (seed, step, round, rank):
    different tuples give unrelated seeds, so ranks and refill rounds never share samples.

    >>> stream_seed(0, 1, 0, 0) == stream_seed(0, 1, 0, 0) != stream_seed(0, 1, 0, 1)
    True
    """
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") >> 1
