"""One cgroup per sandboxed call: a process limit, a memory limit and a CPU quota that hold
for root too (RLIMIT_NPROC does not), on cgroup v1 and v2.

v1 (one hierarchy per controller, `/sys/fs/cgroup/<controller>/`): a folder per call under
this process's own cgroup of each controller (`/proc/self/cgroup`), so a call never gets
more than MIVA itself was given; files `pids.max`, `memory.limit_in_bytes` (+
`memory.memsw.limit_in_bytes`: no swap either), `cpu.cfs_quota_us`.
v2 (one hierarchy, `/sys/fs/cgroup/cgroup.controllers` exists): a folder per call under
this process's cgroup, which must have `pids` and `memory` in `cgroup.subtree_control`;
files `pids.max`, `memory.max`, `memory.swap.max`, `cpu.max`; `cgroup.kill` ends every
process at once. A v2 cgroup that holds processes cannot delegate controllers to children
("no internal processes"): `delegate_v2()` moves this process into a leaf first (what
`miva sandbox serve` does in its container).

A process joins by writing its pid to `cgroup.procs` before it starts anything else
(`join_prefix`: a shell that writes `$$` and then execs the sandbox), so every process the
call creates is born inside the cgroup.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PREFIX = "miva-sandbox-"
V1_CONTROLLERS = ("pids", "memory", "cpu")
REQUIRED = ("pids", "memory")
_counter = itertools.count()


@dataclass(frozen=True)
class Hierarchy:
    """Where per-call cgroups are created: v1 maps controller -> parent folder; v2 has one."""

    version: int
    parents: dict[str, Path]  # controller -> parent folder (v2: the same folder for all)

    @property
    def controllers(self) -> tuple[str, ...]:
        return tuple(self.parents)

    def describe(self) -> str:
        return f"cgroup v{self.version} ({'+'.join(self.controllers)})"


def own_paths(proc_cgroup: str) -> dict[str, str]:
    """`/proc/self/cgroup` text -> {controller or "" (v2): path}.

    >>> own_paths("4:memory:/a/b\\n8:pids:/\\n0::/user.slice\\n")
    {'memory': '/a/b', 'pids': '/', '': '/user.slice'}
    """
    out: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, names, path = parts
        for name in names.split(",") if names else [""]:
            out[name] = path
    return out


def _writable_dir(folder: Path) -> bool:
    """Whether a child cgroup can be created here (tried, then removed)."""
    probe = folder / f"{PREFIX}probe-{os.getpid()}"
    try:
        probe.mkdir()
    except OSError:
        return False
    with contextlib.suppress(OSError):
        probe.rmdir()
    return True


def find_hierarchy(root: Path = ROOT, proc_cgroup: str | None = None) -> Hierarchy | None:
    """The hierarchy this process may create per-call cgroups in, or None."""
    try:
        text = proc_cgroup if proc_cgroup is not None else Path("/proc/self/cgroup").read_text()
    except OSError:
        return None
    own = own_paths(text)
    if (root / "cgroup.controllers").exists():  # v2 (unified)
        parent = root / own.get("", "/").lstrip("/")
        try:
            enabled = (parent / "cgroup.subtree_control").read_text().split()
        except OSError:
            return None
        if not all(c in enabled for c in REQUIRED) or not _writable_dir(parent):
            return None
        have = [c for c in ("pids", "memory", "cpu") if c in enabled]
        return Hierarchy(2, {c: parent for c in have})
    parents: dict[str, Path] = {}
    for c in V1_CONTROLLERS:
        mount = root / c
        if not mount.is_dir() or c not in own:
            continue
        parent = mount / own[c].lstrip("/")
        if _writable_dir(parent):
            parents[c] = parent
    if not all(c in parents for c in REQUIRED):
        return None
    return Hierarchy(1, parents)


def delegate_v2(root: Path = ROOT, leaf: str = "service") -> bool:
    """Move this process into `<own cgroup>/<leaf>` and enable pids, memory and cpu for the
    own cgroup's children, so per-call cgroups can be created beside the leaf (cgroup v2
    only; what a container's init does to delegate). False when not possible here."""
    if not (root / "cgroup.controllers").exists():
        return False
    try:
        own = own_paths(Path("/proc/self/cgroup").read_text()).get("", "/")
        parent = root / own.lstrip("/")
        available = (parent / "cgroup.controllers").read_text().split()
        target = parent / leaf
        target.mkdir(exist_ok=True)
        for pid in (parent / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):  # kernel threads or processes gone meanwhile
                (target / "cgroup.procs").write_text(pid)
        wanted = " ".join(f"+{c}" for c in ("pids", "memory", "cpu") if c in available)
        (parent / "cgroup.subtree_control").write_text(wanted)
        return True
    except OSError:
        return False


@dataclass
class CallCgroup:
    """The cgroup of one call: created with its limits, joined by the launcher, then
    emptied (every process killed) and removed."""

    hierarchy: Hierarchy
    name: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}-{next(_counter)}")
    folders: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def create(
        cls, hierarchy: Hierarchy, processes: int, memory_bytes: int, cpus: float
    ) -> CallCgroup:
        cg = cls(hierarchy)
        try:
            for controller, parent in hierarchy.parents.items():
                folder = parent / cg.name
                if folder not in cg.folders.values():
                    folder.mkdir()
                cg.folders[controller] = folder
            cg._limit(processes, memory_bytes, cpus)
        except OSError:
            cg.remove()
            raise
        return cg

    def _limit(self, processes: int, memory_bytes: int, cpus: float) -> None:
        f = self.folders
        period = 100_000
        quota = max(1000, int(cpus * period))
        if self.hierarchy.version == 1:
            (f["pids"] / "pids.max").write_text(str(processes))
            (f["memory"] / "memory.limit_in_bytes").write_text(str(memory_bytes))
            memsw = f["memory"] / "memory.memsw.limit_in_bytes"
            if memsw.exists():  # only with swap accounting; keeps the call out of swap
                memsw.write_text(str(memory_bytes))
            if "cpu" in f:
                (f["cpu"] / "cpu.cfs_period_us").write_text(str(period))
                (f["cpu"] / "cpu.cfs_quota_us").write_text(str(quota))
            return
        folder = f["pids"]
        (folder / "pids.max").write_text(str(processes))
        (folder / "memory.max").write_text(str(memory_bytes))
        swap = folder / "memory.swap.max"
        if swap.exists():
            swap.write_text("0")
        if "cpu" in f:
            (folder / "cpu.max").write_text(f"{quota} {period}")

    def procs_files(self) -> list[str]:
        """`cgroup.procs` of each distinct folder, for the launcher to write its pid into."""
        seen: list[str] = []
        for folder in self.folders.values():
            path = str(folder / "cgroup.procs")
            if path not in seen:
                seen.append(path)
        return seen

    def pids(self) -> list[int]:
        out: set[int] = set()
        for path in self.procs_files():
            with contextlib.suppress(OSError):
                out.update(int(x) for x in Path(path).read_text().split())
        return sorted(out)

    def kill(self, timeout: float = 5.0) -> None:
        """SIGKILL every process of the call; v2 at once (cgroup.kill), v1 until empty."""
        kill_file = self.folders.get("pids", Path("/nonexistent")) / "cgroup.kill"
        if self.hierarchy.version == 2 and kill_file.exists():
            with contextlib.suppress(OSError):
                kill_file.write_text("1")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)

    def _read_int(self, controller: str, *names: str) -> int | None:
        folder = self.folders.get(controller)
        for name in names:
            with contextlib.suppress(OSError, ValueError):
                return int((folder / name).read_text().split()[0]) if folder else None
        return None

    def _events(self, controller: str, filename: str) -> dict[str, int]:
        folder = self.folders.get(controller)
        out: dict[str, int] = {}
        with contextlib.suppress(OSError, AttributeError):
            for line in (folder / filename).read_text().splitlines():
                key, _, value = line.partition(" ")
                with contextlib.suppress(ValueError):
                    out[key] = int(value)
        return out

    def peak_memory(self) -> int | None:
        return self._read_int("memory", "memory.max_usage_in_bytes", "memory.peak")

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the call for exceeding the memory limit."""
        if self.hierarchy.version == 1:
            control = self._events("memory", "memory.oom_control")
            if "oom_kill" in control:  # kernels since 4.13 count kills; older ones only hits
                return control["oom_kill"] > 0
            return (self._read_int("memory", "memory.failcnt") or 0) > 0
        return self._events("memory", "memory.events").get("oom_kill", 0) > 0

    def pids_limited(self) -> bool:
        """Whether a fork or thread was refused by the process limit."""
        return self._events("pids", "pids.events").get("max", 0) > 0

    def remove(self) -> None:
        self.kill()
        for folder in dict.fromkeys(self.folders.values()):
            for _ in range(100):  # a killed process leaves the cgroup a moment later
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        break
                    time.sleep(0.01)
        self.folders.clear()


def remove_stale(hierarchy: Hierarchy) -> int:
    """Remove per-call cgroups left by MIVA processes that no longer exist (killed before
    they could clean up). Returns how many folders were removed."""
    removed = 0
    for parent in dict.fromkeys(hierarchy.parents.values()):
        with contextlib.suppress(OSError):
            for folder in parent.glob(f"{PREFIX}*"):
                owner = folder.name[len(PREFIX) :].split("-")[0]
                if not owner.isdigit() or _alive(int(owner)):
                    continue
                stale = CallCgroup(hierarchy, folder.name, {"pids": folder})
                stale.kill(timeout=1.0)
                with contextlib.suppress(OSError):
                    folder.rmdir()
                    removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
