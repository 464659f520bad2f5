"""The first code that runs inside a sandbox (a script, never imported by miva).

argv: boot.py RESULT_FD
1. import numpy and PIL (the slow part, done while the sandbox waits for work);
2. write one byte "R" to RESULT_FD: ready;
3. read the request from stdin: an 8-byte big-endian length, that many bytes of JSON
   {"code", "images": [byte lengths], "rlimits": {...}, "audit_hook": bool}, then the
   PNG bytes of the images, one after another;
4. write `image_1.png` ... and `code.py` into the working folder (the current directory),
   set the per-process rlimits, install the audit hook in the weak mode only, run the code
   with `images` (PIL), `np` and `Image` in scope;
5. send `output.png`, when the code saved one, over RESULT_FD and exit (1 when the code
   raised: the traceback is on stderr).

In the kernel-isolated mode the walls are the namespaces, the read-only mounts and the
cgroup around this process: nothing here needs to recognise what the code does. In the
weak mode (no namespaces available, allowed by config) the audit hook below is the only
barrier for files, processes and sockets, and it is not a security boundary (PEP 578).
"""

import contextlib
import json
import os
import resource
import struct
import sys
import traceback

import numpy as np
from PIL import Image

Image.init()  # load every image plugin now, before anything is restricted

RESULT_FD = int(sys.argv[1])
os.write(RESULT_FD, b"R")


def _read_exactly(n):
    chunks, left = [], n
    while left:
        chunk = os.read(0, min(left, 1 << 20))
        if not chunk:
            raise SystemExit("sandbox: the request ended early")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


_request = json.loads(_read_exactly(struct.unpack(">Q", _read_exactly(8))[0]))
for _k, _size in enumerate(_request["images"], start=1):
    with open(f"image_{_k}.png", "wb") as _f:
        _f.write(_read_exactly(_size))
with open("code.py", "w") as _f:
    _f.write(_request["code"])
_devnull = os.open("/dev/null", os.O_RDONLY)
os.dup2(_devnull, 0)
os.close(_devnull)

images = [
    Image.open(f"image_{k}.png").convert("RGB") for k in range(1, len(_request["images"]) + 1)
]
for _im in images:
    _im.load()

_used = resource.getrusage(resource.RUSAGE_SELF)
_cpu_used = int(_used.ru_utime + _used.ru_stime) + 1
for _name, _value in _request["rlimits"].items():
    _which = getattr(resource, _name)
    if _name == "RLIMIT_CPU":  # the budget starts now, not at interpreter start
        _value += _cpu_used
        resource.setrlimit(_which, (_value, _value + 1))
    else:
        # e.g. NPROC above what the host grants: the lower limit stays
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(_which, (_value, _value))

WORKDIR = os.path.realpath(os.getcwd())


def _install_audit_hook():
    """The weak mode's only barrier (see module docstring)."""
    read_roots = (
        *{
            os.path.realpath(p)
            for p in (
                sys.prefix,
                sys.base_prefix,
                sys.exec_prefix,
                "/usr/lib",
                "/usr/local/lib",
                "/usr/share",
            )
        },
        WORKDIR,
    )
    read_files = ("/dev/null", "/dev/urandom", "/dev/zero")
    blocked = {
        "os.fork",
        "os.forkpty",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.kill",
        "os.killpg",
        "subprocess.Popen",
        "ctypes.dlopen",
        "ctypes.dlsym",
        "ctypes.cdata",
        "ctypes.call_function",
        "os.symlink",
        "os.link",
        "os.chroot",
        "os.putenv",
        "sys.setprofile",
        "sys.settrace",
    }
    blocked_modules = ("ctypes", "_ctypes", "_posixsubprocess", "subprocess", "multiprocessing")
    writes = {"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate"}
    writes |= {"os.utime", "shutil.rmtree", "os.rename"}

    def inside(path, roots):
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        return any(real == r or real.startswith(r + os.sep) for r in roots)

    def deny(event, detail=""):
        raise PermissionError(f"sandbox: {event} is not allowed {detail}".strip())

    def hook(event, args):
        if event.startswith("socket."):
            deny(event, "(no network)")
        if event in blocked:
            deny(event)
        if event == "import" and args and str(args[0]).split(".")[0] in blocked_modules:
            deny("import " + str(args[0]))
        if event == "open":
            path, mode, flags = args[0], args[1], args[2]
            if isinstance(path, int):
                return
            writing = (mode is not None and any(c in str(mode) for c in "wax+")) or (
                flags is not None
                and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC)
            )
            if writing and not inside(path, (WORKDIR,)):
                deny("writing", f"outside the working directory: {path}")
            if not writing and not (inside(path, read_roots) or os.fsdecode(path) in read_files):
                deny("reading", f"{path}")
        elif event in ("os.listdir", "os.scandir"):
            path = args[0] if args and args[0] is not None else "."
            if not isinstance(path, int) and not inside(path, read_roots):
                deny(event, f"{path}")
        elif event in writes:
            for arg in args[:2]:
                if isinstance(arg, str | bytes) and not inside(arg, (WORKDIR,)):
                    deny(event, f"outside the working directory: {arg}")

    for name in list(sys.modules):
        if name.split(".")[0] in blocked_modules:
            del sys.modules[name]
    sys.addaudithook(hook)


if _request.get("audit_hook"):
    _install_audit_hook()

_globals = {"__name__": "__main__", "images": images, "np": np, "Image": Image}
_status = 0
try:
    exec(compile(_request["code"], "<model code>", "exec"), _globals)
except SystemExit as _exit:
    _status = _exit.code if isinstance(_exit.code, int) else (0 if _exit.code is None else 1)
except BaseException:
    traceback.print_exc()
    _status = 1
for _stream in (sys.stdout, sys.stderr):
    with contextlib.suppress(Exception):  # the code may have closed or replaced them
        _stream.flush()
try:
    with open(os.path.join(WORKDIR, "output.png"), "rb") as _f:
        _data = _f.read(64 * 1024 * 1024 + 1)
    _view = memoryview(_data)
    while _view:
        _view = _view[os.write(RESULT_FD, _view) :]
except OSError:
    pass
os._exit(_status)
