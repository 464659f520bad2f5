"""Checkpoints written by two processes (gloo): on storage both share, and on node-local disks
(two "nodes" of one rank each, each with its own folder at what would be the same path).
Every rank's RNG state and cursor come back; a different world size fails clearly."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from miva.errors import MivaError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, port: int, tmp: str) -> None:
    """Both layouts in one process group (one start of two processes): storage the ranks
    share (local ranks 0 and 1 of one node), then node-local disks (two nodes of one rank,
    each with its own folder)."""
    import torch.distributed as dist

    from miva.rl.backends.torch_backend import TorchBackend
    from miva.rl.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
    from miva.rl.distributed import World

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    layouts = {
        "shared": (f"{tmp}/shared", World(rank=rank, size=2, local_rank=rank)),
        "node-local": (f"{tmp}/node{rank}", World(rank=rank, size=2, local_rank=0)),
    }
    for name, (root, world) in layouts.items():
        torch.manual_seed(0)
        engine = TorchBackend(torch.nn.Linear(3, 2), lr=0.1, world=world)
        engine.module(torch.ones(1, 3)).sum().backward()
        engine.step()
        torch.manual_seed(100 + rank)  # each rank's own random stream
        for step in (1, 2, 3):
            save_checkpoint(root, step, engine, {"cursor": {"epoch": 0, "pos": 10 * rank + step}},
                            keep=2, world=world)  # fmt: skip
        expected = torch.rand(3)  # what the stream gives next
        torch.manual_seed(12345)  # disturb it
        state = load_checkpoint(latest_checkpoint(root), engine, world)
        again = torch.rand(3)
        Path(tmp, f"{name}-rank{rank}.json").write_text(
            json.dumps({"state": state, "rng_restored": bool(torch.equal(expected, again))})
        )
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_rank_main, args=(_free_port(), str(tmp)), nprocs=2, join=True)
    return tmp


def _seen(tmp: Path, layout: str) -> list[dict]:
    return [json.loads((tmp / f"{layout}-rank{r}.json").read_text()) for r in (0, 1)]


def test_shared_storage_holds_every_ranks_state(saved):
    ck = saved / "shared" / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == ["latest", "step-0000002", "step-0000003"]
    files = {p.name for p in (ck / "step-0000003").iterdir()}
    assert files == {"engine.pt", "state.json", "state-rank0.json", "state-rank1.json",
                     "rng-rank0.pt", "rng-rank1.pt"}  # fmt: skip
    seen = _seen(saved, "shared")
    assert [s["state"]["cursor"]["pos"] for s in seen] == [3, 13]
    assert all(s["state"]["step"] == 3 and s["rng_restored"] for s in seen)
    assert json.loads((ck / "step-0000003" / "state.json").read_text())["world_size"] == 2


def test_node_local_disks_each_hold_their_nodes_ranks(saved):
    for rank in (0, 1):
        ck = saved / f"node{rank}" / "checkpoints"
        files = {p.name for p in (ck / "step-0000003").iterdir()}
        assert {"engine.pt", "state.json", f"rng-rank{rank}.pt", f"state-rank{rank}.json"} <= files
        assert not list(ck.glob(".step-*"))  # nothing left half-written
    seen = _seen(saved, "node-local")
    assert [s["state"]["cursor"]["pos"] for s in seen] == [3, 13]
    assert all(s["rng_restored"] for s in seen)


def test_resuming_with_another_world_size_fails_naming_both(tmp_path):
    from miva.rl.backends.torch_backend import TorchBackend
    from miva.rl.checkpoint import load_checkpoint, save_checkpoint

    engine = TorchBackend(torch.nn.Linear(2, 2), lr=0.1)
    path = save_checkpoint(tmp_path, 1, engine, {"cursor": {"epoch": 0, "pos": 1}})
    state = json.loads((path / "state.json").read_text())
    (path / "state.json").write_text(json.dumps({**state, "world_size": 4}))
    with pytest.raises(MivaError, match="written by 4 training processes but this run has 1"):
        load_checkpoint(path, engine)
    assert os.environ.get("WORLD_SIZE") in (None, "1")
