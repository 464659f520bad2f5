"""The promotion lock: one registration decides at a time, across processes and machines.

The lock is a registered model named ``<model>.promotion-lock``: creating a registered
model is atomic in every MLflow backend (unique name). Its tags say who holds it: a
random owner id, the host, the boot id and PID namespace of that host, the holder's PID
and that process's start time, and a heartbeat the holder refreshes every
`HEARTBEAT_S` seconds while it holds the lock.

A lock is stale (its holder died without releasing it, e.g. SIGKILL or a lost node) when
- the holder ran on this host, in this PID namespace, since the same boot, and no process
  with its PID and start time exists any more (detected at once); or
- its heartbeat is older than `STALE_AFTER_S` (a holder elsewhere; also a hung one); or
- it carries no heartbeat (an older MIVA) and is older than ``registry.lock_timeout_s``.

Breaking a stale lock is itself exclusive: the contender must first create the registered
model ``<lock>.break-<owner>`` (atomic; one winner per stale owner), re-reads the lock and
deletes it only if the same owner still holds it. A contender that read the stale lock
late finds the breaker taken and does nothing; owners are unique, so a breaker never
matches a later lock. Breakers older than the lock timeout are removed by the next holder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".promotion-lock"
HEARTBEAT_S = 5.0
STALE_AFTER_S = 30.0  # heartbeats missed for this long: the holder is gone or hung
TAG = "miva.lock_"  # tag prefix: owner, host, boot_id, pid_ns, pid, pid_start, heartbeat


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> str:
    """Start time of a process (clock ticks since boot, /proc/<pid>/stat field 22); '' if gone.

    PIDs are reused; PID + start time names one process for as long as the host is up."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return ""
    # the command name (field 2) may hold spaces or parentheses: split after the last ")"
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def identity() -> dict[str, str]:
    """This process, as the lock's tags record it."""
    return {
        f"{TAG}host": socket.gethostname(),
        f"{TAG}boot_id": _read("/proc/sys/kernel/random/boot_id"),
        f"{TAG}pid_ns": _pid_namespace(),
        f"{TAG}pid": str(os.getpid()),
        f"{TAG}pid_start": process_start(os.getpid()),
    }


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, read from its tags (missing tags: an older MIVA)."""

    owner: str
    tags: dict[str, str]
    created: float  # epoch seconds

    @classmethod
    def of(cls, model: Any) -> Holder:
        tags = dict(model.tags or {})
        owner = tags.get(f"{TAG}owner") or tags.get("miva.lock_owner", "")
        return cls(owner, tags, (model.creation_timestamp or 0) / 1000)

    def describe(self) -> str:
        t = self.tags
        return f"pid {t.get(f'{TAG}pid', '?')} on {t.get(f'{TAG}host', '?')}"

    def stale_reason(self, timeout: float, now: float | None = None) -> str | None:
        """Why this holder is gone, or None while it may still be alive."""
        now = time.time() if now is None else now
        t = self.tags
        here = identity()
        same_machine = all(
            t.get(k) and t.get(k) == here[k]
            for k in (f"{TAG}host", f"{TAG}boot_id", f"{TAG}pid_ns")
        )
        if same_machine and t.get(f"{TAG}pid", "").isdigit():
            pid = int(t[f"{TAG}pid"])
            if process_start(pid) != t.get(f"{TAG}pid_start"):
                return f"its holder ({self.describe()}) is no longer running"
        beat = t.get(f"{TAG}heartbeat")
        if beat is not None:
            try:
                age = now - float(beat)
            except ValueError:
                age = now - self.created
            if age > STALE_AFTER_S:
                return f"its holder ({self.describe()}) sent no heartbeat for {age:.0f} s"
            return None
        if now - self.created > timeout:
            return f"it is {now - self.created:.0f} s old and carries no heartbeat"
        return None


def _exists_error(exc: Exception) -> bool:
    text = f"{getattr(exc, 'error_code', '')} {exc}"
    return "RESOURCE_ALREADY_EXISTS" in text or "already exists" in text


def _break(client: Any, lock: str, holder: Holder, reason: str) -> None:
    """Delete a stale lock, exclusively (see the module docstring)."""
    from mlflow.exceptions import MlflowException

    breaker = f"{lock}.break-{holder.owner or 'unknown'}"
    try:
        client.create_registered_model(breaker, description=f"broke a stale lock: {reason}")
    except MlflowException as exc:
        if not _exists_error(exc):
            raise
        # another contender is breaking it; if that one died mid-way, its breaker ages out
        with contextlib.suppress(MlflowException):
            made = client.get_registered_model(breaker).creation_timestamp / 1000
            if time.time() - made > STALE_AFTER_S:
                client.delete_registered_model(breaker)
        return
    with contextlib.suppress(MlflowException):  # released meanwhile: nothing to break
        if Holder.of(client.get_registered_model(lock)).owner == holder.owner:
            client.delete_registered_model(lock)
            log.warning("broke the promotion lock %s: %s", lock, reason)


def _remove_old_breakers(client: Any, lock: str, older_than: float) -> None:
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):
        for model in client.search_registered_models(filter_string=f"name LIKE '{lock}.break-%'"):
            if time.time() - model.creation_timestamp / 1000 > older_than:
                with contextlib.suppress(MlflowException):
                    client.delete_registered_model(model.name)


class _Heartbeat(threading.Thread):
    def __init__(self, client: Any, lock: str):
        super().__init__(name="miva-lock-heartbeat", daemon=True)
        self.client, self.lock, self.stop = client, lock, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            try:
                self.client.set_registered_model_tag(self.lock, f"{TAG}heartbeat", str(time.time()))
            except Exception:  # a missed beat is tolerated (STALE_AFTER_S spans several)
                log.warning("could not refresh the promotion lock's heartbeat", exc_info=True)


@contextmanager
def promotion_lock(cfg: Any) -> Iterator[None]:
    """Mutual exclusion across processes for the registry's promotion step."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from miva.registry.tracking import TrackingError

    client = MlflowClient()
    lock = cfg.registry.model_name + LOCK_SUFFIX
    owner = uuid.uuid4().hex
    timeout = cfg.registry.lock_timeout_s
    start = time.monotonic()
    while True:
        tags = {**identity(), f"{TAG}owner": owner, f"{TAG}heartbeat": str(time.time())}
        try:
            client.create_registered_model(lock, tags=tags, description="transient promotion lock")
            break
        except MlflowException as exc:
            if not _exists_error(exc):
                raise TrackingError(f"cannot take the promotion lock {lock!r}: {exc}") from exc
        try:
            holder = Holder.of(client.get_registered_model(lock))
        except MlflowException:
            continue  # released between our create and our read: try again
        reason = holder.stale_reason(timeout)
        if reason is not None:
            _break(client, lock, holder, reason)
            continue
        if time.monotonic() - start > timeout:
            raise TrackingError(
                f"promotion lock {lock!r} held by another registration ({holder.describe()}) "
                f"for more than {timeout:g}s"
            )
        time.sleep(0.2 + random.random() * 0.3)
    heartbeat = _Heartbeat(MlflowClient(), lock)
    heartbeat.start()
    try:
        _remove_old_breakers(client, lock, older_than=timeout)
        yield
    finally:
        heartbeat.stop.set()
        heartbeat.join(timeout=HEARTBEAT_S + 1)
        with contextlib.suppress(MlflowException):
            if Holder.of(client.get_registered_model(lock)).owner == owner:
                client.delete_registered_model(lock)
