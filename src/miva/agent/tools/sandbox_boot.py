"""Bootstrap of the python tool's sandboxed process (run as a script, never imported by miva).

Order matters: import numpy and PIL and load the images first (imports read files all
over site-packages and /proc), then install the audit hook, then run the model's code.
The hook cannot be removed once installed (PEP 578). It refuses:
- sockets of any kind (`socket.*` events), so no network even without a namespace;
- process creation: fork, exec, spawn, system, subprocess, posix_spawn;
- loading native code afterwards (ctypes dlopen, foreign calls) and imports of ctypes,
  _posixsubprocess, subprocess, multiprocessing and pty (dropped from sys.modules first),
  which would let code call libc or fork/exec without an audit event;
- opening a file for writing, or removing, renaming, linking, chmod-ing one, outside the
  working directory; opening for reading or listing outside the working directory, the
  Python installation and a few system folders (so no /proc/*/environ, no home folders).
argv: boot.py CODE_FILE N_IMAGES
"""

import os
import sys

import numpy as np
from PIL import Image

Image.init()  # load every image plugin now, before reads are restricted

WORKDIR = os.path.realpath(os.getcwd())
_code_file = sys.argv[1]
_n = int(sys.argv[2])
images = [Image.open(f"image_{k}.png").convert("RGB") for k in range(1, _n + 1)]
for _im in images:
    _im.load()
with open(_code_file) as _f:
    _code = _f.read()

_READ_ROOTS = (
    *tuple(
        os.path.realpath(p)
        for p in {
            sys.prefix,
            sys.base_prefix,
            sys.exec_prefix,
            "/usr/lib",
            "/usr/local/lib",
            "/usr/share",
        }
    ),
    WORKDIR,
)
_READ_FILES = ("/dev/null", "/dev/urandom", "/dev/zero")
_BLOCKED_EVENTS = {
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
_WRITE_PATH_EVENTS = {
    "os.remove": 0,
    "os.rmdir": 0,
    "os.mkdir": 0,
    "os.chmod": 0,
    "os.chown": 0,
    "os.truncate": 0,
    "os.utime": 0,
    "shutil.rmtree": 0,
    "os.rename": (0, 1),
}


def _inside(path, roots):
    try:
        real = os.path.realpath(os.fsdecode(path) if not isinstance(path, int) else "")
    except (TypeError, ValueError):
        return False
    return any(real == r or real.startswith(r + os.sep) for r in roots)


def _deny(event, detail=""):
    raise PermissionError(f"sandbox: {event} is not allowed {detail}".strip())


def _hook(event, args):
    if event.startswith("socket."):
        _deny(event, "(no network)")
    if event in _BLOCKED_EVENTS:
        _deny(event)
    if event == "import" and args and str(args[0]).split(".")[0] in _BLOCKED_MODULES:
        _deny("import " + str(args[0]))
    if event == "open":
        path, mode, flags = args[0], args[1], args[2]
        if isinstance(path, int):  # an already open descriptor
            return
        writing = (mode is not None and any(c in str(mode) for c in "wax+")) or (
            flags is not None
            and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC)
        )
        if writing:
            if not _inside(path, (WORKDIR,)):
                _deny("writing", f"outside the working directory: {path}")
        elif not (_inside(path, _READ_ROOTS) or os.fsdecode(path) in _READ_FILES):
            _deny("reading", f"{path}")
    elif event in ("os.listdir", "os.scandir"):
        path = args[0] if args and args[0] is not None else "."
        if not isinstance(path, int) and not _inside(path, _READ_ROOTS):
            _deny(event, f"{path}")
    elif event in _WRITE_PATH_EVENTS:
        idx = _WRITE_PATH_EVENTS[event]
        for i in idx if isinstance(idx, tuple) else (idx,):
            if i < len(args) and not isinstance(args[i], int) and not _inside(args[i], (WORKDIR,)):
                _deny(event, f"outside the working directory: {args[i]}")


_BLOCKED_MODULES = ("ctypes", "_ctypes", "_posixsubprocess", "subprocess", "multiprocessing", "pty")
# drop already imported copies, so that importing them again raises the "import" event
for _name in list(sys.modules):
    if _name.split(".")[0] in _BLOCKED_MODULES:
        del sys.modules[_name]
sys.addaudithook(_hook)
del _hook
_globals = {"__name__": "__main__", "images": images, "np": np, "Image": Image}
exec(compile(_code, "<model code>", "exec"), _globals)
