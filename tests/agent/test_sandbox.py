"""The python sandbox: known results on known images, the tool wrapper, the refusal to run
without kernel isolation, the weak mode, dying with the caller, and per-call cgroups.
Escape attempts: test_sandbox_escapes.py; the HTTP service: test_sandbox_service.py."""

from __future__ import annotations

import os
import platform
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from miva.agent.coords import Frame
from miva.agent.sandbox import cgroups, local, sandbox_mode
from miva.agent.sandbox.limits import SandboxLimits
from miva.agent.sandbox.local import Isolation, IsolationUnavailable, LocalSandbox, bwrap_problem
from miva.agent.tools import ToolContext, build_tools
from miva.agent.tools.python import Python
from miva.config import AgentConfig, PythonToolConfig

LIMITS = SandboxLimits(cpu_seconds=2, wall_seconds=4.0, memory_mb=512, output_bytes=300)
IMAGES = [Image.new("RGB", (64, 48), (255, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 255))]
kernel = pytest.mark.skipif(
    bwrap_problem() is not None, reason=f"no kernel isolation on this host: {bwrap_problem()}"
)


@pytest.fixture(scope="module")
def sandbox():
    if bwrap_problem() is not None:
        pytest.skip(f"no kernel isolation on this host: {bwrap_problem()}")
    sb = LocalSandbox(LIMITS, prestart=1)
    yield sb
    sb.close()


def test_code_sees_the_images_and_returns_stdout_and_an_image(sandbox):
    res = sandbox.run(
        "print(len(images), images[0].size, int(np.array(images[1])[..., 2].mean()))\n"
        "images[0].crop((0, 0, 16, 8)).save('output.png')",
        IMAGES,
    )
    assert res.ok, res.error
    assert res.stdout.strip() == "2 (64, 48) 255"
    assert res.image is not None and res.image.size == (16, 8)
    assert res.image.getpixel((0, 0)) == (255, 0, 0)
    assert res.mode.startswith("kernel")


def test_numpy_work_and_files_in_the_working_folder(sandbox):
    res = sandbox.run(
        "import os\n"
        "a = np.asarray(images[0], dtype=np.float64)\n"
        "np.save('a.npy', a)\n"
        "print(sorted(os.listdir('.')), np.load('a.npy').sum(axis=(0, 1)).tolist())",
        IMAGES,
    )
    assert res.ok, res.error
    # the working folder holds only the images, the code and what the code wrote
    assert res.stdout.strip() == (
        "['a.npy', 'code.py', 'image_1.png', 'image_2.png'] [783360.0, 0.0, 0.0]"
    )


def test_calls_do_not_see_each_other(sandbox):
    assert sandbox.run("open('/tmp/left-behind', 'w').write('x')", IMAGES).ok
    res = sandbox.run("import os\nprint(os.path.exists('/tmp/left-behind'), os.listdir('.'))", [])
    assert res.stdout.strip() == "False ['code.py']"


def test_python_tool_wraps_results_for_the_model(sandbox):
    ctx = ToolContext(list(IMAGES), [Frame(64, 48, 56, 56), Frame(32, 32, 56, 56)], 2)
    tool = Python(sandbox)
    ok = tool({"code": "print(images[1].size)"}, ctx)
    assert ok.ok and ok.text == "stdout: (32, 32)"
    bad = tool({"code": "1/0"}, ctx)
    assert not bad.ok and "ZeroDivisionError" in bad.text
    assert not tool({"code": 42}, ctx).ok
    image = tool({"code": "images[0].save('output.png')"}, ctx)
    assert image.ok and len(image.images) == 1 and image.images[0][0].size == (64, 48)


def test_a_garbage_output_image_is_an_error_result(sandbox):
    res = sandbox.run("open('output.png', 'wb').write(b'not a png')", IMAGES)
    assert not res.ok and "could not be read as an image" in res.error


@kernel
def test_build_tools_uses_the_configured_sandbox_and_names_its_mode():
    cfg = AgentConfig(tools=["python"], python=PythonToolConfig(prestart=0))
    tool = build_tools(cfg)["python"]
    assert tool.sandbox.mode == sandbox_mode(cfg.python)
    assert sandbox_mode(cfg.python).startswith("kernel+")


def test_refuses_without_kernel_isolation(monkeypatch):
    """Where bubblewrap cannot create namespaces, the tool refuses unless weak is allowed."""
    monkeypatch.setattr(local, "bwrap_problem", lambda: "bubblewrap (`bwrap`) is not installed")
    local.resolve_isolation.cache_clear()
    try:
        with pytest.raises(IsolationUnavailable, match="bubblewrap .* not installed.*allow_weak"):
            LocalSandbox(LIMITS, prestart=0)
        cfg = AgentConfig(tools=["python"], python=PythonToolConfig(prestart=0, cpu_seconds=3))
        with pytest.raises(IsolationUnavailable):
            build_tools(cfg)
        assert sandbox_mode(cfg.python).startswith("unavailable: the python tool needs kernel")
        weak = LocalSandbox(LIMITS, allow_weak=True, prestart=0)
        assert weak.mode.startswith("weak")
        weak.close()
    finally:
        local.resolve_isolation.cache_clear()


@pytest.fixture(scope="module")
def weak():
    sb = LocalSandbox(LIMITS, prestart=0, isolation=Isolation("weak"))
    yield sb
    sb.close()


@pytest.mark.parametrize(
    "code,fragment",
    [
        ("import os\nos.fork()", "os.fork is not allowed"),
        ("import socket\nsocket.socket()", "no network"),
        ("open('/tmp/miva-weak-escape', 'w')", "outside the working directory"),
        ("print(open('/proc/self/environ').read())", "reading is not allowed"),
        ("import ctypes", "import ctypes is not allowed"),
    ],
)
def test_weak_mode_audit_hook_refuses_the_plain_attempts(weak, code, fragment):
    """The weak mode's audit hook (not a boundary: only for when kernel isolation is absent
    and explicitly allowed) still refuses the obvious attempts."""
    res = weak.run(code, IMAGES)
    assert not res.ok and fragment in res.error and res.mode == "weak"
    assert not os.path.exists("/tmp/miva-weak-escape")


def test_weak_mode_runs_the_positive_control(weak):
    res = weak.run("print(int(np.asarray(images[0])[..., 0].mean()))", IMAGES)
    assert res.ok and res.stdout.strip() == "255"


@kernel
def test_the_sandbox_dies_with_its_caller(tmp_path):
    """SIGKILL the process that called the sandbox: nothing of the call survives it, and the
    cgroup it could not remove is cleaned up by the next MIVA process."""
    marker = f"31{secrets.randbelow(10**6):06d}.5"
    caller = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from miva.agent.sandbox.local import LocalSandbox; "
            "from miva.agent.sandbox.limits import SandboxLimits; "
            "LocalSandbox(SandboxLimits(wall_seconds=60), prestart=0).run("
            f"\"import os; os.execv('/bin/sleep', ['sleep', '{marker}'])\", [])",
        ]
    )
    deadline = time.monotonic() + 30
    while not _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(marker), "the sandboxed process never started"
    caller.send_signal(signal.SIGKILL)
    caller.wait()
    deadline = time.monotonic() + 5
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = _processes_with(marker)
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert not survivors
    hierarchy = cgroups.find_hierarchy()
    if hierarchy is not None:
        left = [
            p
            for parent in hierarchy.parents.values()
            for p in parent.glob(f"{cgroups.PREFIX}{caller.pid}-*")
        ]
        assert left, "the killed caller's cgroup should still be there before clean-up"
        cgroups.remove_stale(hierarchy)
        assert not [p for p in left if p.exists()]


def _processes_with(marker: str) -> list[int]:
    """Host pids of `sleep MARKER` processes (the payloads' leftovers look like that)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().endswith(b"\0" + marker.encode() + b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


# ---------------------------------------------------------------------------- cgroups


def test_own_paths_reads_v1_and_v2_lines():
    text = "12:pids:/a\n4:cpu,cpuacct:/b\n1:name=systemd:/c\n0::/d\n"
    assert cgroups.own_paths(text) == {
        "pids": "/a",
        "cpu": "/b",
        "cpuacct": "/b",
        "name=systemd": "/c",
        "": "/d",
    }


def test_v2_limits_are_written_to_the_unified_files(tmp_path):
    """cgroup v2 cannot be mounted beside this host's v1 controllers, so the files are
    checked on a stand-in folder laid out as a delegated v2 cgroup (named so)."""
    standin = tmp_path / "standin-cgroup2"
    own = standin / "pod"
    own.mkdir(parents=True)
    (standin / "cgroup.controllers").write_text("cpu memory pids\n")
    (own / "cgroup.subtree_control").write_text("cpu memory pids\n")
    hierarchy = cgroups.find_hierarchy(root=standin, proc_cgroup="0::/pod\n")
    assert hierarchy is not None and hierarchy.version == 2
    assert hierarchy.controllers == ("pids", "memory", "cpu")
    # a real cgroup folder comes with its files; the stand-in gets empty ones
    cg = cgroups.CallCgroup(hierarchy)
    folder = own / cg.name
    folder.mkdir()
    for name in ("pids.max", "memory.max", "memory.swap.max", "cpu.max", "cgroup.procs"):
        (folder / name).write_text("")
    cg.folders = dict.fromkeys(hierarchy.controllers, folder)
    cg._limit(processes=19, memory_bytes=256 * 2**20, cpus=0.5)
    assert (folder / "pids.max").read_text() == "19"
    assert (folder / "memory.max").read_text() == str(256 * 2**20)
    assert (folder / "memory.swap.max").read_text() == "0"
    assert (folder / "cpu.max").read_text() == "50000 100000"
    assert cg.procs_files() == [str(folder / "cgroup.procs")]


def test_v2_without_delegated_controllers_is_not_used(tmp_path):
    standin = tmp_path / "standin-cgroup2"
    (standin / "pod").mkdir(parents=True)
    (standin / "cgroup.controllers").write_text("cpu memory pids\n")
    (standin / "pod" / "cgroup.subtree_control").write_text("cpu\n")
    assert cgroups.find_hierarchy(root=standin, proc_cgroup="0::/pod\n") is None


@kernel
def test_a_call_gets_its_own_cgroup_with_the_limits(sandbox):
    hierarchy = local.resolve_isolation(False).cgroup
    if hierarchy is None:
        pytest.skip("this host gives MIVA no writable cgroup: calls use rlimits only")
    res = sandbox.run("print(open('/proc/self/cgroup').read().strip().splitlines()[-1])", IMAGES)
    # the cgroup namespace hides the host's cgroup paths from the code
    assert res.ok and res.stdout.strip().endswith(":/")
    cg = cgroups.CallCgroup.create(hierarchy, processes=7, memory_bytes=64 * 2**20, cpus=0.25)
    try:
        pids = cg.folders["pids"]
        assert (pids / "pids.max").read_text().strip() == "7"
        mem = cg.folders["memory"]
        limit = "memory.limit_in_bytes" if hierarchy.version == 1 else "memory.max"
        assert int((mem / limit).read_text()) == 64 * 2**20
    finally:
        cg.remove()
    assert not any(f.exists() for f in cg.folders.values())


def test_the_service_backend_needs_a_url():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="service_url is not set"):
        PythonToolConfig(backend="service")


# ---------------------------------------------------------------------------- seccomp


def _run_filter(program: bytes, arch: int, nr: int) -> int:
    """Evaluate the classic BPF program on (arch, nr): the value of the RET it reaches."""
    import struct

    insns = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            acc = {0: nr, 4: arch}[k]
        elif code == 0x15:
            pc += jt if acc == k else jf
        elif code == 0x35:
            pc += jt if acc >= k else jf
        elif code == 0x06:
            return k
        pc += 1


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_seccomp_program_denies_the_list_and_nothing_else(machine):
    from miva.agent.sandbox import seccomp

    program = seccomp.filter_program(machine)
    arch = seccomp.AUDIT_ARCH[machine]
    column = 0 if machine == "x86_64" else 1
    for name, numbers in seccomp.DENIED.items():
        assert _run_filter(program, arch, numbers[column]) == seccomp.RET_ERRNO_EPERM, name
    denied = {nrs[column] for nrs in seccomp.DENIED.values()}
    for nr in range(0, 460):  # everything else is allowed (read, write, clone3, mmap, ...)
        if nr not in denied:
            assert _run_filter(program, arch, nr) == seccomp.RET_ALLOW, nr
    # another ABI (x86_64's 32-bit entry) is killed: the list's numbers do not apply there
    assert _run_filter(program, 0x40000003, 20) == seccomp.RET_KILL_PROCESS
    if machine == "x86_64":
        assert _run_filter(program, arch, seccomp.X32_SYSCALL_BIT | 39) == seccomp.RET_ERRNO_EPERM


@kernel
@pytest.mark.skipif(platform.machine() != "x86_64", reason="the 32-bit entry is x86_64's")
def test_seccomp_filter_applies_inside_the_sandbox(sandbox):
    code = """
import ctypes, mmap
libc = ctypes.CDLL(None, use_errno=True)
for nr in (425, 321, 298, 323, 250, 101, 0x40000000 | 39):  # io_uring, bpf, perf, uffd, keyctl, ptrace, x32
    print(libc.syscall(nr, 0, 0, 0, 0, 0), ctypes.get_errno())
# getpid through the 32-bit entry (mov eax, 20; int 0x80; ret): the process is killed
buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
buf.write(bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3]))
addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
print("before", flush=True)
ctypes.CFUNCTYPE(ctypes.c_int)(addr)()
print("after")
"""
    res = sandbox.run(code, IMAGES)
    lines = res.stdout.split("\n")
    assert lines[:7] == ["-1 1"] * 7, res.stdout
    assert "before" in res.stdout and "after" not in res.stdout
    assert "SIGSYS" in res.error


@kernel
def test_without_a_cgroup_the_namespaces_still_end_every_process(tmp_path):
    """`kernel+rlimits` (a host where MIVA cannot create cgroups): a process the code leaves
    behind still dies with the call, through the PID namespace."""
    marker = f"31{secrets.randbelow(10**6):06d}.5"
    sb = LocalSandbox(LIMITS, prestart=0, isolation=Isolation("kernel", cgroup=None))
    try:
        assert sb.mode == "kernel+rlimits"
        ok = sb.run("print(int(np.asarray(images[0])[..., 0].mean()))", IMAGES)
        assert ok.ok and ok.stdout.strip() == "255" and ok.peak_memory_bytes is None
        res = sb.run(
            "import os\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            f"    os.execv('/bin/sleep', ['sleep', '{marker}'])\n",
            IMAGES,
        )
        assert res.ok, res.error
    finally:
        sb.close()
    time.sleep(0.2)
    survivors = _processes_with(marker)
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert survivors == []
