"""Escape attempts against the kernel-isolated python sandbox, written as an attacker who has
read its source would write them.

Each payload tries to reach one outcome by a different mechanism and prints whatever it
got. The assertions never look at how the payload failed, only at the host: the secret
never comes back, no host file appears, the victim process and this test are alive, no
process with the payload's marker survives the call, no host listener saw a connection,
the call's cgroup is gone, and the call came back within its wall limit (+ slack).
So a payload nobody has written yet meets the same checks.

Skipped only where this host cannot create the namespaces (then the tool refuses to run
by default: `test_sandbox.py::test_refuses_without_kernel_isolation`).
"""

from __future__ import annotations

import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from miva.agent.sandbox import cgroups
from miva.agent.sandbox.limits import SandboxLimits
from miva.agent.sandbox.local import LocalSandbox, _runtime_paths, bwrap_problem

pytestmark = pytest.mark.skipif(
    bwrap_problem() is not None, reason=f"no kernel isolation on this host: {bwrap_problem()}"
)

LIMITS = SandboxLimits(
    cpu_seconds=2, wall_seconds=4.0, memory_mb=256, output_bytes=400, processes=16, disk_mb=32
)
SLACK_SECONDS = 4.0  # start-up of a sandbox when the warm one was taken, on a loaded machine
IMAGES = [Image.new("RGB", (64, 48), (255, 0, 0))]
SYSCALLS = {  # numbers the ctypes payloads use (x86_64 / aarch64)
    "x86_64": {"openat": 257, "kill": 62, "pidfd_open": 434, "pidfd_send_signal": 424},
    "aarch64": {"openat": 56, "kill": 129, "pidfd_open": 434, "pidfd_send_signal": 424},
}


@pytest.fixture(scope="module")
def sandbox():
    sb = LocalSandbox(LIMITS, prestart=1)
    yield sb
    sb.close()


class Listener:
    """Host services the payloads try to reach: TCP and UDP on 127.0.0.1, TCP on every
    address, an abstract and a path unix socket; each records whoever reached it."""

    def __init__(self, folder: Path, token: str):
        self.hits: list[str] = []
        self.sockets: list[socket.socket] = []
        tcp = self._bind(socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", 0))
        self.tcp_port = tcp.getsockname()[1]
        anyaddr = self._bind(socket.AF_INET, socket.SOCK_STREAM, ("0.0.0.0", 0))
        self.any_port = anyaddr.getsockname()[1]
        udp = self._bind(socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", 0))
        self.udp_port = udp.getsockname()[1]
        self.abstract = f"miva-escape-{token}"
        self._bind(socket.AF_UNIX, socket.SOCK_STREAM, "\0" + self.abstract)
        self.unix_path = str(folder / "host.sock")
        self._bind(socket.AF_UNIX, socket.SOCK_STREAM, self.unix_path)
        self.host_ip = _host_ip()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _bind(self, family, kind, address) -> socket.socket:
        s = socket.socket(family, kind)
        s.bind(address)
        if kind == socket.SOCK_STREAM:
            s.listen(8)
        s.settimeout(0.05)
        self.sockets.append(s)
        return s

    def _serve(self) -> None:
        while not self.stop.is_set():
            for s in self.sockets:
                try:
                    if s.type == socket.SOCK_STREAM:
                        conn, _ = s.accept()
                        self.hits.append(f"{s.family.name} connection")
                        conn.close()
                    else:
                        data, _ = s.recvfrom(100)
                        self.hits.append(f"udp datagram {data!r}")
                except (TimeoutError, BlockingIOError, OSError):
                    continue

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        for s in self.sockets:
            s.close()


def _host_ip() -> str:
    """An address of this host other than loopback (or 127.0.0.1 when it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent; picks the outgoing address
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


@pytest.fixture
def host(tmp_path, monkeypatch):
    """What the payloads go after: a secret in this process's environment and in a host
    file, a victim process holding the secret, host listeners, a folder to write into."""
    token = secrets.token_hex(8)
    secret = f"SECRET-{token}"
    monkeypatch.setenv("MIVA_TEST_SECRET", secret)
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(secret)
    os.chmod(secret_file, 0o600)
    (tmp_path / f"listed-{token}").write_text("x")
    victim = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)", secret],
        env={**os.environ, "VICTIM_SECRET": secret},
    )
    listener = Listener(tmp_path, token)
    info = {
        "token": token,
        "secret": secret,
        "secret_file": str(secret_file),
        "folder": str(tmp_path),
        "victim": victim.pid,
        "caller": os.getpid(),
        "marker": f"31{int(token[:6], 16) % 10**6:06d}.5",
        "tcp": listener.tcp_port,
        "any_port": listener.any_port,
        "udp": listener.udp_port,
        "abstract": listener.abstract,
        "unix_path": listener.unix_path,
        "host_ip": listener.host_ip,
        "runtime": sys.prefix,
        # not walked: large read-only trees, and /dev (its pipes would block the reader)
        "skip": ["/proc", "/sys", "/dev", "/usr", *_runtime_paths()],
        "nr": SYSCALLS.get(platform.machine(), SYSCALLS["x86_64"]),
    }
    yield info, victim, listener
    listener.close()
    victim.kill()
    victim.wait()


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


def _call_cgroups() -> set[str]:
    """Names of this process's per-call cgroups (one folder per controller on v1)."""
    hierarchy = cgroups.find_hierarchy()
    if hierarchy is None:
        return set()
    return {
        p.name
        for parent in set(hierarchy.parents.values())
        for p in parent.glob(f"{cgroups.PREFIX}{os.getpid()}-*")
    }


def attack(sandbox, host_fixture, payload: str):
    info, victim, listener = host_fixture
    code = f"INFO = {info!r}\n" + payload
    written = [Path(info["folder"]) / f"escape-{i}" for i in range(4)]
    planted = [
        Path(info["runtime"]) / f"escape-{info['token']}",
        Path(f"/usr/lib/escape-{info['token']}"),
    ]
    t0 = time.monotonic()
    res = sandbox.run(code, IMAGES)
    elapsed = time.monotonic() - t0
    time.sleep(0.1)  # anything the call left behind would show by now
    out = res.stdout + res.error
    assert info["secret"] not in out, f"secret leaked: {out!r}"
    assert f"listed-{info['token']}" not in out, f"host folder listed: {out!r}"
    leaked_files = [p for p in written + planted if p.exists()]
    for p in planted:
        p.unlink(missing_ok=True)
    assert not leaked_files, f"files written on the host: {leaked_files}"
    assert victim.poll() is None, "the host victim process was killed"
    assert not listener.hits, f"a host service was reached: {listener.hits}"
    survivors = _processes_with(info["marker"])
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"processes outlived the call: {survivors}"
    assert len(_call_cgroups()) <= sandbox.prestart, "a call's cgroup was left behind"
    assert elapsed < LIMITS.wall_seconds + SLACK_SECONDS, f"call took {elapsed:.1f} s"
    assert len(res.stdout) <= LIMITS.output_bytes + 60
    return res


# Each list: several mechanisms for one outcome. Payloads print what they obtain.
READ_SECRETS = {
    "environment and /proc/*/environ of every visible process": """
import os
print(dict(os.environ))
for pid in os.listdir('/proc'):
    if pid.isdigit():
        for name in ('environ', 'cmdline'):
            try: print(open(f'/proc/{pid}/{name}', 'rb').read())
            except OSError as e: print(e)
for pid in (INFO['caller'], INFO['victim'], os.getppid()):
    for name in ('environ', 'cmdline', 'mem'):
        try: print(open(f'/proc/{pid}/{name}', 'rb').read(4096))
        except OSError as e: print(e)
""",
    "the secret file by path, through /proc/*/root and by walking the whole tree": """
import os
for path in (INFO['secret_file'], '/proc/self/root' + INFO['secret_file'],
             '/proc/1/root' + INFO['secret_file'], f"/proc/{INFO['caller']}/root" + INFO['secret_file']):
    try: print(open(path).read())
    except OSError as e: print(e)
for top, dirs, files in os.walk('/'):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in INFO['skip']]
    for f in files:
        try: print(open(os.path.join(top, f), 'rb').read(2000))
        except OSError: pass
""",
    "directory file descriptors climbing above the working folder": """
import os
fd = os.open('.', os.O_RDONLY | os.O_DIRECTORY)
for _ in range(30):
    fd = os.open('..', os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
rel = INFO['secret_file'].lstrip('/')
try: print(os.read(os.open(rel, os.O_RDONLY, dir_fd=fd), 200))
except OSError as e: print(e)
print(os.listdir(fd))
""",
    "raw syscalls through ctypes (openat, process_vm_readv)": """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.syscall(INFO['nr']['openat'], -100, INFO['secret_file'].encode(), 0)
print('openat', fd, ctypes.get_errno())
if fd >= 0:
    buf = ctypes.create_string_buffer(200); libc.read(fd, buf, 200); print(buf.value)
class iovec(ctypes.Structure):
    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]
buf = ctypes.create_string_buffer(4096)
local = iovec(ctypes.cast(buf, ctypes.c_void_p), 4096)
remote = iovec(0x400000, 4096)
print('vm_readv', libc.process_vm_readv(INFO['victim'], ctypes.byref(local), 1, ctypes.byref(remote), 1, 0), ctypes.get_errno())
""",
}

WRITE_OR_LIST_OUTSIDE = {
    "plain paths, pathlib and the runtime folders": """
import os, pathlib
for target in (INFO['folder'] + '/escape-0', INFO['runtime'] + '/escape-' + INFO['token'],
               '/usr/lib/escape-' + INFO['token']):
    try: pathlib.Path(target).write_text('x'); print('wrote', target)
    except OSError as e: print(e)
for folder in (INFO['folder'], '/root', '/home', '/etc', '/'):
    try: print(folder, os.listdir(folder))
    except OSError as e: print(e)
""",
    "directory descriptors and renames out of the working folder": """
import os
open('inside.txt', 'w').write('x')
root = os.open('/', os.O_RDONLY | os.O_DIRECTORY)
rel = INFO['folder'].lstrip('/')
try:
    fd = os.open(rel + '/escape-1', os.O_WRONLY | os.O_CREAT, dir_fd=root); os.write(fd, b'x')
except OSError as e: print(e)
try: os.rename('inside.txt', INFO['folder'] + '/escape-2')
except OSError as e: print(e)
try: os.symlink(INFO['folder'], 'link'); open('link/escape-3', 'w').write('x')
except OSError as e: print(e)
try: print(os.listdir(os.open(rel, os.O_RDONLY | os.O_DIRECTORY, dir_fd=root)))
except OSError as e: print(e)
""",
    "ctypes open/mount/mknod and chroot tricks": """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.syscall(INFO['nr']['openat'], -100, (INFO['folder'] + '/escape-3').encode(), os.O_WRONLY | os.O_CREAT, 0o644)
print('openat', fd, ctypes.get_errno())
print('mount', libc.mount(b'none', b'/usr', None, 32 | 4096, None), ctypes.get_errno())  # MS_REMOUNT|MS_BIND
print('mknod', libc.mknod(b'disk', 0o60600, os.makedev(8, 0)), ctypes.get_errno())
try: os.chroot('/'); print('chroot ok')
except OSError as e: print(e)
try: print(open('/proc/1/root/../../' + INFO['folder'].lstrip('/') + '/secret.txt').read())
except OSError as e: print(e)
""",
}

SIGNAL_HOST = {
    "os.kill and killpg on host pids": """
import os, signal
for pid in (INFO['victim'], INFO['caller'], 1):
    for fn in (os.kill, os.killpg):
        try: fn(pid, signal.SIGKILL); print('sent', fn.__name__, pid)
        except OSError as e: print(e)
""",
    "pidfd_open + pidfd_send_signal through ctypes": """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
for pid in (INFO['victim'], INFO['caller']):
    fd = libc.syscall(INFO['nr']['pidfd_open'], pid, 0)
    print('pidfd', pid, fd, ctypes.get_errno())
    if fd >= 0:
        print(libc.syscall(INFO['nr']['pidfd_send_signal'], fd, 9, None, 0))
print(libc.syscall(INFO['nr']['kill'], INFO['victim'], 9), ctypes.get_errno())
""",
    "kill(-1) and every pid /proc shows": """
import os, signal
for entry in os.listdir('/proc'):
    if entry.isdigit() and int(entry) != os.getpid():
        try: os.kill(int(entry), signal.SIGKILL)
        except OSError: pass
os.kill(-1, signal.SIGKILL)
""",
}

OUTLIVE = {
    "fork, setsid and exec": """
import os
if os.fork() == 0:
    os.setsid()
    os.execv('/bin/sleep', ['sleep', INFO['marker']])
print('parent done')
""",
    "double fork ignoring SIGHUP and SIGTERM": """
import os, signal
if os.fork() == 0:
    os.setsid()
    signal.signal(signal.SIGHUP, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.fork() == 0:
        os.execv('/bin/sleep', ['sleep', INFO['marker']])
    os._exit(0)
os.wait()
""",
    "subprocess in a new session and a shell's background job": """
import os, subprocess
subprocess.Popen(['sleep', INFO['marker']], start_new_session=True)
os.system('nohup sleep ' + INFO['marker'] + ' >/dev/null 2>&1 &')
os._exit(0)
""",
}

REACH_NETWORK = {
    "TCP and UDP to the host's loopback and its other address": """
import socket
for addr in (('127.0.0.1', INFO['tcp']), ('127.0.0.1', INFO['any_port']), (INFO['host_ip'], INFO['any_port'])):
    try: socket.create_connection(addr, timeout=1); print('connected', addr)
    except OSError as e: print(addr, e)
try: socket.socket(socket.AF_INET6).connect(('::1', INFO['tcp']))
except OSError as e: print(e)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try: s.sendto(b'hello', ('127.0.0.1', INFO['udp']))
except OSError as e: print(e)
""",
    "abstract and path unix sockets": """
import socket
for address in ('\\0' + INFO['abstract'], INFO['unix_path'], '/run/docker.sock', '/var/run/docker.sock'):
    try: socket.socket(socket.AF_UNIX).connect(address); print('connected', address)
    except OSError as e: print(e)
""",
    "raw and packet sockets, DNS, and interfaces": """
import socket
for args in ((socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP), (socket.AF_PACKET, socket.SOCK_RAW, 0)):
    try: socket.socket(*args); print('opened', args)
    except OSError as e: print(e)
try: print(socket.getaddrinfo('example.com', 80))
except OSError as e: print(e)
print(socket.if_nameindex())
""",
}


def _cases(group):
    return [pytest.param(code, id=name) for name, code in group.items()]


@pytest.mark.parametrize("payload", _cases(READ_SECRETS))
def test_cannot_read_secrets_of_the_caller_or_other_processes(sandbox, host, payload):
    attack(sandbox, host, payload)


@pytest.mark.parametrize("payload", _cases(WRITE_OR_LIST_OUTSIDE))
def test_cannot_write_or_list_outside_the_working_folder(sandbox, host, payload):
    attack(sandbox, host, payload)


@pytest.mark.parametrize("payload", _cases(SIGNAL_HOST))
def test_cannot_signal_host_processes(sandbox, host, payload):
    attack(sandbox, host, payload)


@pytest.mark.parametrize("payload", _cases(OUTLIVE))
def test_no_process_outlives_the_call(sandbox, host, payload):
    attack(sandbox, host, payload)


@pytest.mark.parametrize("payload", _cases(REACH_NETWORK))
def test_cannot_reach_host_network_services(sandbox, host, payload):
    res = attack(sandbox, host, payload)
    assert "connected" not in res.stdout and "opened" not in res.stdout


def test_fork_bomb_is_bounded(sandbox, host):
    res = attack(
        sandbox, host, "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass\n"
    )
    assert not res.ok


def test_memory_spread_over_processes_is_bounded(sandbox, host):
    """4 GB over 5 processes (800 MB each, under the per-process address-space limit of
    the default config but far over the call's memory)."""
    payload = """
import os
kids = []
for _ in range(5):
    pid = os.fork()
    if pid == 0:
        try:
            block = bytearray(800 * 1024 * 1024)
            for i in range(0, len(block), 4096): block[i] = 1
        except MemoryError: pass
        os._exit(0)
    kids.append(pid)
for pid in kids: os.waitpid(pid, 0)
print('done')
"""
    res = attack(sandbox, host, payload)
    if res.peak_memory_bytes is not None:  # measured by the cgroup: the whole call
        assert res.peak_memory_bytes <= LIMITS.memory_mb * 1024 * 1024 * 1.05


def test_a_20_gb_file_is_refused(sandbox, host):
    payload = """
import os
try:
    with open('big', 'wb') as f:
        f.truncate(20 * 1024**3)
        f.seek(20 * 1024**3 - 1); f.write(b'x')
except OSError as e: print('truncate', e)
try:
    with open('big2', 'wb') as f:
        for _ in range(20 * 1024):
            f.write(b'x' * 1024 * 1024)
except OSError as e: print('write', e)
"""
    res = attack(sandbox, host, payload)
    assert res.stdout.count("File too large") == 2, res.stdout


def test_filling_the_working_folder_with_many_files_stops_at_its_size(sandbox, host):
    payload = """
n = 0
try:
    while True:
        with open(f'f{n}', 'wb') as f: f.write(b'x' * 4 * 1024 * 1024)
        n += 1
except OSError as e: print(n, e)
"""
    res = attack(sandbox, host, payload)
    assert "No space left on device" in res.stdout


def test_endless_output_is_cut(sandbox, host):
    res = attack(sandbox, host, "while True: print('x' * 100000)")
    assert not res.ok and "output limit" in res.error


def test_sleeping_forever_hits_the_wall_clock_limit(sandbox, host):
    assert "wall-clock limit" in attack(sandbox, host, "import time\ntime.sleep(1000)").error


def test_busy_loop_hits_the_cpu_time_limit(sandbox):
    # a wall limit far above the CPU limit, so that a loaded machine still shows RLIMIT_CPU
    limits = SandboxLimits(**{**LIMITS.to_dict(), "cpu_seconds": 1, "wall_seconds": 20.0})
    t0 = time.monotonic()
    res = sandbox.run("while True: pass", IMAGES, limits)
    assert "CPU-time limit of 1 s exceeded" in res.error
    assert time.monotonic() - t0 < limits.wall_seconds + SLACK_SECONDS
