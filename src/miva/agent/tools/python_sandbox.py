"""Run model-written Python against the images in a sandboxed subprocess.

Isolation, layer by layer (see README.md, "The agent runtime", for what it does NOT stop):
- a fresh temporary working directory holding only `image_k.png` and the code, removed
  afterwards;
- an empty environment (only PATH, HOME/TMPDIR = the working directory, LANG, one BLAS
  thread): none of the parent's variables or secrets; `python -I` ignores PYTHON* variables,
  the user site and the current directory;
- a network namespace of its own (`unshare -n`) when the host allows it, and in every
  case an audit hook (`sandbox_boot.py`) that refuses sockets, process creation, ctypes,
  writes outside the working directory and reads outside it and the Python installation;
- resource limits: CPU seconds (RLIMIT_CPU), address space (RLIMIT_AS), file size
  (RLIMIT_FSIZE: caps what stdout and files can grow to), open files, no core dumps,
  processes (RLIMIT_NPROC, not enforced for root);
- its own session / process group, killed as a whole with SIGKILL at the end and on the
  wall-clock limit; stdout and stderr go to size-capped files, read back up to a limit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image

BOOT = Path(__file__).with_name("sandbox_boot.py")
OUTPUT_IMAGE = "output.png"
FILE_LIMIT_BYTES = 16 * 1024 * 1024  # no file (stdout included) may grow beyond this


@dataclass
class SandboxLimits:
    cpu_seconds: int = 5
    wall_seconds: float = 10.0
    memory_mb: int = 1024
    output_bytes: int = 8192

    @classmethod
    def from_config(cls, cfg) -> SandboxLimits:
        return cls(cfg.cpu_seconds, cfg.wall_seconds, cfg.memory_mb, cfg.output_bytes)


@dataclass
class SandboxResult:
    ok: bool
    stdout: str
    error: str  # "" when ok; the reason (exception text, limit hit) otherwise
    image: Image.Image | None = None
    network_namespace: bool = False


@lru_cache(maxsize=1)
def network_namespace_available() -> bool:
    """Whether `unshare -n` works here (root, or unprivileged user namespaces)."""
    exe = shutil.which("unshare")
    if not exe:
        return False
    for cmd in ([exe, "-n", "true"], [exe, "-rn", "true"]):
        try:
            if subprocess.run(cmd, capture_output=True, timeout=5).returncode == 0:
                return True
        except (OSError, subprocess.TimeoutExpired):
            pass
    return False


def _unshare_prefix() -> list[str]:
    exe = shutil.which("unshare")
    if not exe or not network_namespace_available():
        return []
    if subprocess.run([exe, "-n", "true"], capture_output=True, timeout=5).returncode == 0:
        return [exe, "-n", "--"]
    return [exe, "-rn", "--"]


def _limits(lim: SandboxLimits):
    def apply() -> None:
        import resource

        mem = lim.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (lim.cpu_seconds, lim.cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT_BYTES, FILE_LIMIT_BYTES))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))

    return apply


def _read_capped(path: Path, limit: int) -> tuple[str, bool]:
    if not path.exists():
        return "", False
    size = path.stat().st_size
    with open(path, "rb") as f:
        data = f.read(limit)
    return data.decode("utf-8", errors="replace"), size > limit


def run_python(
    code: str, images: list[Image.Image], limits: SandboxLimits | None = None
) -> SandboxResult:
    """Run `code` with `images` (a list of PIL images, `images[0]` is Image 1), `np` and
    `Image` in scope. Saving `output.png` in the working directory returns an image."""
    lim = limits or SandboxLimits()
    work = Path(tempfile.mkdtemp(prefix="miva-sandbox-"))
    proc = None
    try:
        for k, img in enumerate(images, start=1):
            img.save(work / f"image_{k}.png")
        (work / "code.py").write_text(code)
        netns = _unshare_prefix()
        cmd = [*netns, sys.executable, "-I", str(BOOT), "code.py", str(len(images))]
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(work),
            "TMPDIR": str(work),
            "LANG": "C.UTF-8",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        with open(work / ".stdout", "wb") as out, open(work / ".stderr", "wb") as err:
            proc = subprocess.Popen(
                cmd,
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=_limits(lim),
            )
            timed_out = False
            try:
                rc = proc.wait(timeout=lim.wall_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
                rc = None
        _kill_group(proc)
        stdout, cut = _read_capped(work / ".stdout", lim.output_bytes)
        stderr, _ = _read_capped(work / ".stderr", 64 * 1024)
        if cut:
            stdout += f"\n[output cut at {lim.output_bytes} bytes]"
        error = ""
        if timed_out:
            error = f"wall-clock limit of {lim.wall_seconds:g} s exceeded; the process was killed"
        elif rc != 0:
            error = _explain(rc, stderr, lim)
        image = None
        if not error and (work / OUTPUT_IMAGE).exists():
            image, img_err = _load_output_image(work / OUTPUT_IMAGE)
            error = img_err
        return SandboxResult(not error, stdout, error, image, bool(netns))
    finally:
        if proc is not None:
            _kill_group(proc)
        shutil.rmtree(work, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL cannot be ignored
        proc.wait(timeout=5)


def _explain(rc: int, stderr: str, lim: SandboxLimits) -> str:
    if rc < 0:
        sig = -rc
        if sig == signal.SIGXCPU:
            return f"CPU-time limit of {lim.cpu_seconds} s exceeded"
        if sig == signal.SIGXFSZ:
            return f"output limit exceeded: a file or stdout grew beyond {FILE_LIMIT_BYTES} bytes"
        if sig == signal.SIGKILL:
            return "the process was killed (CPU-time or memory limit)"
        return f"the process died with signal {signal.Signals(sig).name}"
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    tail = lines[-1] if lines else f"exit status {rc}"
    if "File too large" in tail:
        return f"output limit exceeded: a file or stdout grew beyond {FILE_LIMIT_BYTES} bytes"
    if "MemoryError" in tail:
        return f"memory limit of {lim.memory_mb} MB exceeded (MemoryError)"
    return tail[-500:]


def _load_output_image(path: Path) -> tuple[Image.Image | None, str]:
    try:
        with Image.open(path) as im:
            if im.width * im.height > 4096 * 4096:
                return None, f"{OUTPUT_IMAGE} is too large ({im.width}x{im.height})"
            im.load()
            return im.convert("RGB"), ""
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return None, f"{OUTPUT_IMAGE} could not be read as an image ({exc})"
