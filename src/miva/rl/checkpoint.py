"""Atomic checkpoints with exact resume.

A checkpoint is a folder ``<out>/checkpoints/step-<N>/`` holding the training backend's state (model,
optimizer, scheduler; with DeepSpeed one optimizer shard per rank), ``state.json`` (step,
world size, rank 0's data cursor and counters), and per rank ``state-rank<r>.json`` (that
rank's cursor and counters) and ``rng-rank<r>.pt`` (python, numpy, torch and CUDA generator
states). It is written under a temporary name and renamed when complete, then
``<out>/checkpoints/latest`` is replaced atomically; a run killed while writing leaves the
previous checkpoint intact. `load_checkpoint` restores everything so a resumed run
continues with the same random numbers and the same next prompts on every rank.

With several training processes every rank calls both functions (they are collective):
rank 0 creates, renames and prunes folders, each rank writes its own files. The folder
must be on storage every rank sees (one machine, or a shared volume across nodes).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from miva.errors import MivaError
from miva.rl.distributed import World, barrier


def rng_state() -> dict[str, Any]:
    import numpy as np

    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(
    root: str | Path,
    step: int,
    backend: Any,
    state: dict[str, Any],
    keep: int = 2,
    world: World | None = None,
) -> Path:
    """Write ``step-<step>`` atomically and point ``latest`` at it; keep the newest `keep`.

    `state` is this rank's (cursor, counters); every rank of `world` must call this. On
    storage all ranks share, rank 0 publishes the folder; on node-local storage (each node
    its own disk) the first rank of each node publishes its node's copy."""
    world = world or World()
    ckdir = Path(root) / "checkpoints"
    final = ckdir / f"step-{step:07d}"
    tmp = ckdir / f".step-{step:07d}.tmp"
    marker = tmp / ".opened-by-rank0"
    if world.is_main:
        ckdir.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        marker.touch()
    barrier()
    shared = marker.exists()
    if not shared and world.local_rank == 0 and tmp.exists():
        shutil.rmtree(tmp)  # this node's own disk: its first rank starts the folder afresh
    barrier()  # every rank, shared or not (a barrier only some ranks reach never returns)
    if not shared:
        tmp.mkdir(parents=True, exist_ok=True)
    backend.save(str(tmp))
    torch.save(rng_state(), tmp / f"rng-rank{world.rank}.pt")
    blob = json.dumps({**state, "step": step}, indent=2, sort_keys=True)
    (tmp / f"state-rank{world.rank}.json").write_text(blob)
    publisher = world.is_main if shared else world.local_rank == 0
    if publisher:
        common = {**state, "step": step, "world_size": world.size}
        (tmp / "state.json").write_text(json.dumps(common, indent=2, sort_keys=True))
    barrier()  # every rank's files are in place before the folder is published
    if publisher:
        marker.unlink(missing_ok=True)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _atomic_write_text(ckdir / "latest", final.name)
        done = sorted(p for p in ckdir.glob("step-*") if p.is_dir())
        for old in done[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def latest_checkpoint(root: str | Path) -> Path | None:
    ckdir = Path(root) / "checkpoints"
    pointer = ckdir / "latest"
    if not pointer.exists():
        return None
    path = ckdir / pointer.read_text().strip()
    if not (path / "state.json").exists():
        raise MivaError(f"checkpoint {path} named by {pointer} is incomplete (no state.json)")
    return path


def load_checkpoint(path: str | Path, backend: Any, world: World | None = None) -> dict[str, Any]:
    """Restore the backend and this rank's RNG states; return this rank's saved ``state`` (with
    ``step``). A checkpoint written by a different number of ranks fails with both numbers."""
    world = world or World()
    path = Path(path)
    shared = json.loads((path / "state.json").read_text())
    saved_world = int(shared.get("world_size", 1))
    if saved_world != world.size:
        raise MivaError(
            f"checkpoint {path} was written by {saved_world} training processes but this run has "
            f"{world.size}; resume with the same number (torchrun --nproc-per-node / --nnodes)"
        )
    backend.load(str(path))
    rng = path / f"rng-rank{world.rank}.pt"
    if not rng.exists():  # written before per-rank files existed (one process)
        rng = path / "rng.pt"
    set_rng_state(torch.load(rng, weights_only=False))
    mine = path / f"state-rank{world.rank}.json"
    return json.loads(mine.read_text()) if mine.exists() else shared
