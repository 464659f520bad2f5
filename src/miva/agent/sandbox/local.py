"""Run model-written Python on this machine, kernel-isolated, one fresh sandbox per call.

Kernel mode (the default; `Isolation.kind == "kernel"`), per call:
- bubblewrap creates new user, PID, mount, network, IPC, UTS and cgroup namespaces, drops
  every capability (bounding set included), forbids further user namespaces, starts a new
  session (no terminal injection) and dies with its parent; a seccomp filter
  (`seccomp.py`) refuses io_uring, eBPF, perf events, userfaultfd, keyrings, ptrace and
  the other kernel interfaces the code has no use for;
- the file system is a fresh tmpfs root holding only: /usr and the Python installation
  (runtime + site-packages) bound read-only, /etc/ld.so.cache, a new /proc (this PID
  namespace only), a minimal /dev, a tmpfs /tmp and the tmpfs working folder /sandbox with
  the images and the code; no host home, repository, /etc, /run or /sys;
- the network namespace holds only its own loopback: no route out, no host loopback
  services, no abstract unix sockets of the host;
- a cgroup per call (`cgroups.py`, v1 or v2) with a process limit, a memory limit (tmpfs
  files included) and a CPU quota, where the host lets MIVA create one; per-process rlimits
  (CPU seconds, address space, file size, open files, no core dumps) in every case;
- the sandbox's PID 1 is bubblewrap's init: when the code's process ends, the kernel
  kills whatever it left behind, and at the wall-clock limit the whole cgroup and session
  are killed;
- stdout/stderr/result come back over pipes, read up to caps; the environment is empty
  apart from PATH, HOME, TMPDIR, LANG and one BLAS thread.

Weak mode (`agent.python.allow_weak_isolation: true`, used only where bubblewrap cannot
create namespaces): a subprocess in its own session and, where `unshare -n` works, network
namespace; a Python audit hook refuses sockets, fork/exec, ctypes and files outside the
working folder. That is NOT a security boundary, so it is never chosen silently.

Start-up (namespaces, interpreter, numpy) costs about as much as a call: `prestart`
sandboxes are started ahead and wait, ready, for their one call.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image

from miva.agent.sandbox import cgroups, seccomp
from miva.agent.sandbox.limits import (
    FILE_LIMIT_BYTES,
    MAX_OUTPUT_PIXELS,
    OUTPUT_IMAGE,
    SandboxLimits,
    SandboxResult,
)
from miva.errors import MivaError

BOOT_SOURCE = Path(__file__).with_name("boot.py")
SANDBOX_WORKDIR = "/sandbox"
MAX_RESULT_BYTES = 64 * 1024 * 1024
STDERR_KEEP = 64 * 1024
OPEN_FILES = 256


class IsolationUnavailable(MivaError):
    """Kernel isolation cannot run here and the weak mode was not allowed."""


@dataclass(frozen=True)
class Isolation:
    """How calls are isolated on this host (decided once per process)."""

    kind: str  # "kernel" | "weak"
    cgroup: cgroups.Hierarchy | None = None
    network_namespace: bool = False  # weak mode: whether `unshare -n` wraps the process

    @property
    def name(self) -> str:
        """Short name recorded with runs and results, e.g. `kernel+cgroup-v1`."""
        if self.kind == "kernel":
            return f"kernel+cgroup-v{self.cgroup.version}" if self.cgroup else "kernel+rlimits"
        return "weak+netns" if self.network_namespace else "weak"

    def describe(self) -> str:
        if self.kind == "kernel":
            limits = (
                f"{self.cgroup.describe()} per call + rlimits"
                if self.cgroup
                else "rlimits only (no writable cgroup here)"
            )
            filtered = "; seccomp filter" if seccomp.supported() else ""
            return (
                "kernel isolation: bubblewrap (user, pid, mount, network, ipc, uts, cgroup "
                f"namespaces; no capabilities; read-only runtime; tmpfs working folder"
                f"{filtered}); {limits}"
            )
        net = "a network namespace, " if self.network_namespace else ""
        return f"WEAK isolation: {net}a Python audit hook and rlimits (not a security boundary)"


# ---------------------------------------------------------------------------- probing


@lru_cache(maxsize=1)
def bwrap_problem() -> str | None:
    """None when bubblewrap can create the sandbox here, else why not."""
    exe = shutil.which("bwrap")
    if not exe:
        return "bubblewrap (`bwrap`) is not installed: run `make system-deps` or `apt-get install bubblewrap`"
    argv = [*bwrap_argv(SandboxLimits(disk_mb=1)), "/usr/bin/env", "true"]
    try:
        out = subprocess.run(argv, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not run: {exc}"
    if out.returncode != 0:
        err = out.stderr.decode(errors="replace").strip().splitlines()
        detail = err[-1] if err else f"exit status {out.returncode}"
        return (
            f"bubblewrap cannot create namespaces here ({detail}); unprivileged user "
            "namespaces may be disabled (sysctl kernel.unprivileged_userns_clone / "
            "user.max_user_namespaces) or blocked by seccomp in a container"
        )
    return None


@lru_cache(maxsize=1)
def _unshare_net_prefix() -> tuple[str, ...]:
    exe = shutil.which("unshare")
    if not exe:
        return ()
    for flags in ("-n", "-rn"):
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            if subprocess.run([exe, flags, "true"], capture_output=True, timeout=5).returncode == 0:
                return (exe, flags, "--")
    return ()


@lru_cache(maxsize=2)
def resolve_isolation(allow_weak: bool = False) -> Isolation:
    """Kernel isolation when bubblewrap works here (with a cgroup when one can be made),
    else the weak mode if allowed, else `IsolationUnavailable` naming what is missing."""
    problem = bwrap_problem()
    if problem is None:
        hierarchy = cgroups.find_hierarchy()
        if hierarchy is not None:
            cgroups.remove_stale(hierarchy)
        return Isolation("kernel", hierarchy)
    if not allow_weak:
        raise IsolationUnavailable(
            f"the python tool needs kernel isolation and it is not available: {problem}. "
            "Fix that, use the sandbox service (agent.python.backend=service), or accept the "
            "weaker audit-hook mode with --set agent.python.allow_weak_isolation=true"
        )
    return Isolation("weak", network_namespace=bool(_unshare_net_prefix()))


# ---------------------------------------------------------------------------- command lines


def _runtime_paths() -> list[str]:
    """Folders of the Python installation outside /usr (a venv, pyenv, conda), deepest
    last, without duplicates or folders inside others."""
    import site

    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    real = sorted({os.path.realpath(p) for p in candidates if os.path.isdir(p)})
    out: list[str] = []
    for p in real:
        if p == "/usr" or p.startswith("/usr/"):
            continue
        if any(p.startswith(q + "/") for q in out):
            continue
        out.append(p)
    # the interpreter may be reached through a venv's symlink: bind where it really is too
    exe_home = os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))
    if not exe_home.startswith("/usr") and not any(
        exe_home == q or exe_home.startswith(q + "/") for q in out
    ):
        out.append(exe_home)
    return out


def bwrap_argv(limits: SandboxLimits, seccomp_fd: int | None = None) -> list[str]:
    """The bubblewrap command line up to (not including) the program to run; `seccomp_fd`
    is a readable descriptor holding the seccomp program (`seccomp.filter_program`)."""
    size = str(limits.disk_mb * 1024 * 1024)
    argv = [
        shutil.which("bwrap") or "bwrap",
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--cap-drop",
        "ALL",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "HOME",
        SANDBOX_WORKDIR,
        "--setenv",
        "TMPDIR",
        "/tmp",
        "--setenv",
        "LANG",
        "C.UTF-8",
    ]
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        argv += ["--setenv", var, "1"]
    argv += ["--size", size, "--tmpfs", "/tmp", "--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / top
        if host.is_symlink():
            argv += ["--symlink", os.readlink(host), f"/{top}"]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), f"/{top}"]
    argv += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    for path in _runtime_paths():
        argv += ["--ro-bind", path, path]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--size", size, "--tmpfs", SANDBOX_WORKDIR, "--chdir", SANDBOX_WORKDIR]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    return argv


def _seccomp_fd() -> int | None:
    """A pipe's read end holding the filter program (bubblewrap reads it at start)."""
    if not seccomp.supported():
        return None
    program = seccomp.filter_program()
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, program)  # a few hundred bytes: well inside a pipe's buffer
    finally:
        os.close(write_fd)
    return read_fd


def _join_prefix(procs_files: list[str]) -> list[str]:
    """`sh -c` that writes its own pid into each cgroup, then execs the rest: every process
    of the call is born inside the cgroup."""
    script = "".join(f'echo $$ > "${i}" && ' for i in range(1, len(procs_files) + 1))
    script += f'shift {len(procs_files)} && exec "$@"'
    return ["/bin/sh", "-c", script, "sh", *procs_files]


@lru_cache(maxsize=1)
def _boot_source() -> str:
    return BOOT_SOURCE.read_text()


# ---------------------------------------------------------------------------- one sandbox


@dataclass
class _Started:
    """A started sandbox, waiting for its one request."""

    proc: subprocess.Popen
    result_fd: int
    limits: SandboxLimits
    cgroup: cgroups.CallCgroup | None
    workdir: Path | None  # weak mode: a host temporary folder

    def alive(self) -> bool:
        return self.proc.poll() is None


def _start(iso: Isolation, limits: SandboxLimits) -> _Started:
    cg = None
    if iso.cgroup is not None:
        # +3: the bubblewrap monitor, its init and the interpreter itself
        cg = cgroups.CallCgroup.create(
            iso.cgroup, limits.processes + 3, limits.memory_mb * 1024 * 1024, limits.cpus
        )
    read_fd, write_fd = os.pipe()
    workdir = None
    filter_fd = None
    try:
        python = [sys.executable, "-I", "-B", "-c", _boot_source(), str(write_fd)]
        if iso.kind == "kernel":
            filter_fd = _seccomp_fd()
            argv = [*bwrap_argv(limits, filter_fd), *python]
            cwd, env = "/", {}
        else:
            workdir = Path(tempfile.mkdtemp(prefix="miva-sandbox-"))
            argv = [*_unshare_net_prefix(), *python]
            cwd = str(workdir)
            env = {
                "PATH": "/usr/bin:/bin",
                "HOME": cwd,
                "TMPDIR": cwd,
                "LANG": "C.UTF-8",
                "OPENBLAS_NUM_THREADS": "1",
                "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
            }
        if cg is not None:
            argv = [*_join_prefix(cg.procs_files()), *argv]
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(write_fd,) if filter_fd is None else (write_fd, filter_fd),
            start_new_session=True,
        )
    except BaseException:
        os.close(read_fd)
        if cg is not None:
            cg.remove()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    finally:
        os.close(write_fd)
        if filter_fd is not None:
            os.close(filter_fd)
    return _Started(proc, read_fd, limits, cg, workdir)


def _request_bytes(code: str, pngs: list[bytes], rlimits: dict[str, int], hook: bool) -> bytes:
    head = json.dumps(
        {"code": code, "images": [len(b) for b in pngs], "rlimits": rlimits, "audit_hook": hook}
    ).encode()
    return struct.pack(">Q", len(head)) + head + b"".join(pngs)


def _rlimits(limits: SandboxLimits) -> dict[str, int]:
    mem = limits.memory_mb * 1024 * 1024
    return {
        "RLIMIT_CPU": limits.cpu_seconds,
        "RLIMIT_AS": mem,
        "RLIMIT_FSIZE": FILE_LIMIT_BYTES,
        "RLIMIT_NOFILE": OPEN_FILES,
        "RLIMIT_CORE": 0,
        # counted per user namespace, so it bounds this call alone (not for uid 0, where the
        # cgroup pids limit is what holds)
        "RLIMIT_NPROC": limits.processes,
    }


class _Streams:
    """Reads stdout, stderr and the result pipe together, each up to its cap."""

    def __init__(self, started: _Started, output_bytes: int):
        p = started.proc
        self.sel = selectors.DefaultSelector()
        self.open = 0
        for name, f in (("stdout", p.stdout), ("stderr", p.stderr)):
            os.set_blocking(f.fileno(), False)
            self.sel.register(f.fileno(), selectors.EVENT_READ, name)
            self.open += 1
        os.set_blocking(started.result_fd, False)
        self.sel.register(started.result_fd, selectors.EVENT_READ, "result")
        self.open += 1
        self.stdout = bytearray()
        self.stdout_total = 0
        self.stderr = bytearray()
        self.result = bytearray()
        self.ready = False
        self.output_bytes = output_bytes
        self.overflow = ""  # which cap was exceeded

    def pump(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout=max(0.0, timeout)):
            try:
                chunk = os.read(key.fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                self.sel.unregister(key.fd)
                self.open -= 1
                continue
            name = key.data
            if name == "stdout":
                self.stdout_total += len(chunk)
                room = self.output_bytes - len(self.stdout)
                if room > 0:
                    self.stdout += chunk[:room]
                if self.stdout_total > FILE_LIMIT_BYTES:
                    self.overflow = "output"
            elif name == "stderr":
                self.stderr += chunk
                if len(self.stderr) > 2 * STDERR_KEEP:
                    del self.stderr[:-STDERR_KEEP]
            else:
                if not self.ready:
                    self.ready = chunk[:1] == b"R"
                    chunk = chunk[1:]
                self.result += chunk
                if len(self.result) > MAX_RESULT_BYTES:
                    self.overflow = "result"

    def close(self) -> None:
        self.sel.close()


def _kill(started: _Started) -> None:
    if started.cgroup is not None:
        started.cgroup.kill()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(started.proc.pid, signal.SIGKILL)


def _run_started(
    started: _Started, iso: Isolation, code: str, pngs: list[bytes], limits: SandboxLimits
) -> SandboxResult:
    proc = started.proc
    streams = _Streams(started, limits.output_bytes)
    error = ""
    timed_out = False
    try:
        deadline = time.monotonic() + limits.startup_seconds
        while not streams.ready and streams.open and time.monotonic() < deadline:
            streams.pump(deadline - time.monotonic())
        if not streams.ready:
            _kill(started)
            proc.wait()
            detail = streams.stderr.decode(errors="replace").strip().splitlines()
            why = detail[-1] if detail else f"no sign of life in {limits.startup_seconds:g} s"
            return SandboxResult(False, "", f"the sandbox did not start: {why}", mode=iso.name)
        request = _request_bytes(code, pngs, _rlimits(limits), hook=iso.kind == "weak")
        writer = threading.Thread(target=_write_all, args=(proc.stdin, request), daemon=True)
        writer.start()
        deadline = time.monotonic() + limits.wall_seconds
        while streams.open:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            if streams.overflow:
                break
            streams.pump(min(left, 0.5))
            if proc.poll() is not None and iso.kind == "weak":
                # no PID namespace: whatever the code left running is killed with the group
                _kill(started)
        _kill(started)
        proc.wait()
        # what was already written before the kill is still in the pipes
        end = time.monotonic() + 0.2
        while streams.open and time.monotonic() < end:
            streams.pump(0.05)
    finally:
        streams.close()
    rc = proc.returncode
    stderr = streams.stderr.decode(errors="replace")
    stdout = streams.stdout.decode(errors="replace")
    if streams.stdout_total > limits.output_bytes:
        stdout += f"\n[output cut at {limits.output_bytes} bytes]"
    cg = started.cgroup
    peak = cg.peak_memory() if cg is not None else None
    if timed_out:
        error = f"wall-clock limit of {limits.wall_seconds:g} s exceeded; the process was killed"
    elif streams.overflow == "output":
        error = f"output limit exceeded: stdout grew beyond {FILE_LIMIT_BYTES} bytes; killed"
    elif streams.overflow == "result":
        error = f"{OUTPUT_IMAGE} is larger than {MAX_RESULT_BYTES} bytes"
    elif rc != 0:
        error = _explain(rc, stderr, limits, cg)
    image = None
    if not error and streams.result:
        image, error = load_output_image(bytes(streams.result))
    return SandboxResult(not error, stdout, error, image, iso.name, peak)


def _write_all(pipe: io.BufferedWriter | None, data: bytes) -> None:
    if pipe is None:
        return
    with contextlib.suppress(OSError, ValueError):  # the sandbox died or closed stdin: fine
        pipe.write(data)
        pipe.close()


def _finish(started: _Started) -> None:
    _kill(started)
    with contextlib.suppress(subprocess.TimeoutExpired):
        started.proc.wait(timeout=5)
    for f in (started.proc.stdin, started.proc.stdout, started.proc.stderr):
        with contextlib.suppress(OSError, ValueError):
            if f is not None:
                f.close()
    with contextlib.suppress(OSError):
        os.close(started.result_fd)
    if started.cgroup is not None:
        started.cgroup.remove()
    if started.workdir is not None:
        shutil.rmtree(started.workdir, ignore_errors=True)


def _signal_of(rc: int) -> int | None:
    if rc < 0:
        return -rc  # weak mode: Popen reports a signal as a negative status
    if rc > 128:
        return rc - 128  # bubblewrap reports its child's signal as 128 + signal
    return None


def _explain(rc: int, stderr: str, limits: SandboxLimits, cg: cgroups.CallCgroup | None) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    tail = lines[-1][-500:] if lines else ""
    notes = []
    if cg is not None and cg.oom_killed():
        notes.append(f"memory limit of {limits.memory_mb} MB exceeded (all processes together)")
    if cg is not None and cg.pids_limited():
        notes.append(f"process limit of {limits.processes} reached")
    sig = _signal_of(rc)
    if sig == signal.SIGXCPU:
        notes.append(f"CPU-time limit of {limits.cpu_seconds} s exceeded")
    elif sig == signal.SIGXFSZ or "File too large" in tail:
        notes.append(f"file size limit exceeded: a file grew beyond {FILE_LIMIT_BYTES} bytes")
    elif "MemoryError" in tail:
        notes.append(f"memory limit of {limits.memory_mb} MB exceeded (MemoryError)")
    elif sig == signal.SIGKILL and not notes:
        notes.append("the process was killed (CPU-time or memory limit)")
    elif sig is not None and not notes:
        with contextlib.suppress(ValueError):
            notes.append(f"the process died with signal {signal.Signals(sig).name}")
    if not notes:
        return tail or f"exit status {rc}"
    return "; ".join(notes) + (f" ({tail})" if tail and sig is None else "")


def load_output_image(data: bytes) -> tuple[Image.Image | None, str]:
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_OUTPUT_PIXELS:
                return None, f"{OUTPUT_IMAGE} is too large ({im.width}x{im.height})"
            im.load()
            return im.convert("RGB"), ""
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return None, f"{OUTPUT_IMAGE} could not be read as an image ({exc})"


def _png_bytes(images: list[Image.Image]) -> list[bytes]:
    out = []
    for img in images:
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=1)
        out.append(buf.getvalue())
    return out


# ---------------------------------------------------------------------------- the backend


class LocalSandbox:
    """`LocalSandbox(limits, allow_weak).run(code, images) -> SandboxResult`.

    Thread-safe; each call gets a sandbox of its own. Raises `IsolationUnavailable` at
    construction when kernel isolation cannot run here and the weak mode is not allowed."""

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        allow_weak: bool = False,
        prestart: int = 1,
        isolation: Isolation | None = None,
    ):
        self.limits = limits or SandboxLimits()
        self.isolation = isolation or resolve_isolation(allow_weak)
        self.prestart = prestart
        self._ready: deque[_Started] = deque()
        self._lock = threading.Lock()
        self._closed = False
        # One long-lived thread starts every sandbox: --die-with-parent follows the thread
        # that forked, which must outlive the sandboxes it started.
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="miva-sandbox-start")
        atexit.register(self.close)
        self._refill()

    @property
    def mode(self) -> str:
        return self.isolation.name

    def _refill(self) -> None:
        with self._lock:
            missing = self.prestart - len(self._ready)
            if self._closed or missing <= 0:
                return
        for _ in range(missing):
            self._spawner.submit(self._start_ready)

    def _start_ready(self) -> None:
        started = _start(self.isolation, self.limits)
        with self._lock:
            if not self._closed and len(self._ready) < self.prestart:
                self._ready.append(started)
                return
        _finish(started)

    def _take(self, limits: SandboxLimits) -> _Started:
        if limits == self.limits:
            with self._lock:
                while self._ready:
                    started = self._ready.popleft()
                    if started.alive():
                        return started
                    _finish(started)
        if self._closed:
            raise RuntimeError("the sandbox was closed")
        return self._spawner.submit(_start, self.isolation, limits).result()

    def run(
        self, code: str, images: list[Image.Image], limits: SandboxLimits | None = None
    ) -> SandboxResult:
        """Run `code` with `images` (`images[0]` is Image 1), `np` and `Image` in scope;
        saving `output.png` in the working folder returns an image."""
        return self.run_png(code, _png_bytes(images), limits)

    def run_png(
        self, code: str, pngs: list[bytes], limits: SandboxLimits | None = None
    ) -> SandboxResult:
        """`run` with the images already encoded (PNG bytes, decoded inside the sandbox)."""
        lim = limits or self.limits
        try:
            started = self._take(lim)
        except OSError as exc:  # e.g. the cgroup could not be made: an error result, not a crash
            return SandboxResult(False, "", f"the sandbox could not start: {exc}", mode=self.mode)
        try:
            self._refill()
            return _run_started(started, self.isolation, code, pngs, lim)
        finally:
            _finish(started)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            ready, self._ready = list(self._ready), deque()
        for started in ready:
            _finish(started)
        self._spawner.shutdown(wait=False, cancel_futures=True)
