"""Atomic checkpoints with exact resume.

A checkpoint is a folder ``<out>/checkpoints/step-<N>/`` holding the engine state (model,
optimizer, scheduler), ``state.json`` (step, data cursor, counters) and ``rng.pt`` (python,
numpy, torch and CUDA generator states). It is written under a temporary name and renamed
when complete, then ``<out>/checkpoints/latest`` is replaced atomically; a run killed while
writing leaves the previous checkpoint intact. `load_latest` restores everything so a
resumed run continues with the same random numbers and the same next prompts.
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
    root: str | Path, step: int, engine: Any, state: dict[str, Any], keep: int = 2
) -> Path:
    """Write ``step-<step>`` atomically and point ``latest`` at it; keep the newest `keep`."""
    ckdir = Path(root) / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    final = ckdir / f"step-{step:07d}"
    tmp = ckdir / f".step-{step:07d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    engine.save(str(tmp))
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({**state, "step": step}, indent=2, sort_keys=True))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _atomic_write_text(ckdir / "latest", final.name)
    done = sorted(p for p in ckdir.glob("step-*") if p.is_dir())
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
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


def load_checkpoint(path: str | Path, engine: Any) -> dict[str, Any]:
    """Restore engine and RNG states; return the saved ``state`` (with ``step``)."""
    path = Path(path)
    engine.load(str(path))
    set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    return json.loads((path / "state.json").read_text())
