"""The promotion lock on a real MLflow registry (SQLite): a lock left by a SIGKILLed
process is broken at once and safely; a live holder's lock is never broken."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from mlflow import MlflowClient

from miva.config import load_config
from miva.registry.lock import LOCK_SUFFIX, STALE_AFTER_S, TAG, Holder, promotion_lock
from miva.registry.tracking import TrackingError, configure

HOLD = """
import sys, time
from miva.config import load_config
from miva.registry.lock import promotion_lock
from miva.registry.tracking import configure
cfg = load_config("tiny-cpu", sys.argv[1:])
configure(cfg)
with promotion_lock(cfg):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture(scope="module")
def registry_dir(tmp_path_factory):
    """One SQLite registry for the module (creating one costs seconds); tests use their
    own model names."""
    folder = tmp_path_factory.mktemp("registry")
    saved = {v: os.environ.pop(v, None) for v in ("MLFLOW_TRACKING_URI", "MIVA_PARENT_RUN_ID")}
    cwd = os.getcwd()
    os.chdir(folder)
    yield folder
    os.chdir(cwd)
    os.environ.update({k: v for k, v in saved.items() if v is not None})


@pytest.fixture
def overrides(registry_dir, request):
    return ["registry.lock_timeout_s=120", f"registry.model_name=lock-{request.node.name[:40]}"]


@pytest.fixture
def cfg(overrides):
    c = load_config("tiny-cpu", overrides)
    configure(c)
    return c


def _holder(overrides) -> subprocess.Popen:
    """A real process that takes the lock (same registry, same model) and sleeps."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, *overrides], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_lock_left_by_a_sigkilled_process_is_broken_at_once(cfg, overrides):
    holder = _holder(overrides)
    lock = cfg.registry.model_name + LOCK_SUFFIX
    held = Holder.of(MlflowClient().get_registered_model(lock))
    assert held.tags[f"{TAG}pid"] == str(holder.pid)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    t0 = time.monotonic()
    with promotion_lock(cfg):
        waited = time.monotonic() - t0
        mine = Holder.of(MlflowClient().get_registered_model(lock))
        assert mine.owner != held.owner and mine.tags[f"{TAG}pid"] == str(os.getpid())
    # far below both the lock timeout (120 s) and the heartbeat staleness (30 s)
    assert waited < 10
    breaker = MlflowClient().get_registered_model(f"{lock}.break-{held.owner}")
    assert "no longer running" in breaker.description
    assert not MlflowClient().search_registered_models(f"name = '{lock}'")


def test_a_live_holder_keeps_its_lock(cfg, overrides):
    cfg.registry.lock_timeout_s = 2.0
    holder = _holder(overrides)
    try:
        refused = pytest.raises(
            TrackingError, match=f"held by another registration .pid {holder.pid}"
        )
        with refused, promotion_lock(cfg):
            pass
        lock = cfg.registry.model_name + LOCK_SUFFIX
        assert Holder.of(MlflowClient().get_registered_model(lock)).tags[f"{TAG}pid"] == str(
            holder.pid
        )
    finally:
        holder.kill()
        holder.wait()


def _foreign_lock(cfg, heartbeat_age: float) -> str:
    """A lock as a holder on another machine leaves it (a stand-in for that machine: the
    tags name a host that is not this one)."""
    lock = cfg.registry.model_name + LOCK_SUFFIX
    tags = {
        f"{TAG}owner": "elsewhere-owner",
        f"{TAG}host": "another-node",
        f"{TAG}pid": "1",
        f"{TAG}heartbeat": str(time.time() - heartbeat_age),
    }
    MlflowClient().create_registered_model(lock, tags=tags)
    return lock


def test_a_holder_elsewhere_is_gone_when_its_heartbeat_stops(cfg):
    _foreign_lock(cfg, heartbeat_age=STALE_AFTER_S + 5)
    with promotion_lock(cfg):
        pass


def test_a_holder_elsewhere_with_a_fresh_heartbeat_is_waited_for(cfg):
    cfg.registry.lock_timeout_s = 1.5
    lock = _foreign_lock(cfg, heartbeat_age=0)
    with pytest.raises(TrackingError, match="pid 1 on another-node"), promotion_lock(cfg):
        pass
    assert Holder.of(MlflowClient().get_registered_model(lock)).owner == "elsewhere-owner"


def test_a_contender_that_lost_the_break_does_not_delete_the_lock(cfg):
    """Two contenders saw the same stale lock; the one whose breaker exists already leaves
    the lock to the winner (here the winner's breaker is fresh, so nothing is deleted)."""
    from miva.registry.lock import _break

    lock = _foreign_lock(cfg, heartbeat_age=STALE_AFTER_S + 5)
    client = MlflowClient()
    client.create_registered_model(f"{lock}.break-elsewhere-owner")  # the other contender won
    _break(client, lock, Holder.of(client.get_registered_model(lock)), "test")
    assert Holder.of(client.get_registered_model(lock)).owner == "elsewhere-owner"
