"""The python tool's sandbox: known results on known images, and every escape attempt
ends as a bounded error result (never a crash or a hang of the caller)."""

from __future__ import annotations

import os
import time

import pytest
from PIL import Image

from miva.agent.coords import Frame
from miva.agent.tools import ToolContext
from miva.agent.tools.python import Python
from miva.agent.tools.python_sandbox import SandboxLimits, network_namespace_available, run_python

LIMITS = SandboxLimits(cpu_seconds=1, wall_seconds=2.0, memory_mb=512, output_bytes=300)
IMAGES = [Image.new("RGB", (64, 48), (255, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 255))]


def run(code):
    t = time.monotonic()
    res = run_python(code, IMAGES, LIMITS)
    assert time.monotonic() - t < LIMITS.wall_seconds + 6  # bounded, whatever the code does
    return res


def test_code_sees_the_images_and_returns_stdout_and_an_image():
    res = run(
        "print(len(images), images[0].size, int(np.array(images[1])[..., 2].mean()))\n"
        "images[0].crop((0, 0, 16, 8)).save('output.png')"
    )
    assert res.ok, res.error
    assert res.stdout.strip() == "2 (64, 48) 255"
    assert res.image is not None and res.image.size == (16, 8)


def test_python_tool_wraps_results_for_the_model():
    ctx = ToolContext(list(IMAGES), [Frame(64, 48, 56, 56), Frame(32, 32, 56, 56)], 2)
    tool = Python(LIMITS)
    ok = tool({"code": "print(images[1].size)"}, ctx)
    assert ok.ok and ok.text == "stdout: (32, 32)"
    bad = tool({"code": "1/0"}, ctx)
    assert not bad.ok and "ZeroDivisionError" in bad.text
    assert not tool({"code": 42}, ctx).ok


@pytest.mark.parametrize(
    "name,code,fragment",
    [
        ("infinite loop", "while True: pass", "limit"),
        ("sleep forever", "import time\ntime.sleep(1000)", "wall-clock limit"),
        ("fork", "import os\nos.fork()", "os.fork is not allowed"),
        (
            "fork bomb via subprocess",
            "import subprocess\nsubprocess.Popen(['sh', '-c', 'sleep 100'])",
            "not allowed",
        ),
        (
            "posix_spawn",
            "import os\nos.posix_spawn('/bin/sh', ['sh'], {})",
            "os.posix_spawn is not allowed",
        ),
        ("os.system", "import os\nos.system('echo hi')", "os.system is not allowed"),
        ("multiprocessing", "import multiprocessing", "not allowed"),
        ("unbounded allocation", "x = []\nwhile True: x.append(bytearray(10**8))", "memory limit"),
        ("huge allocation", "x = bytearray(10**11)", "memory limit"),
        ("print gigabytes", "while True: print('x' * 100000)", "output limit"),
        (
            "read own environment file",
            "print(open('/proc/self/environ').read())",
            "reading is not allowed",
        ),
        (
            "read parent environment",
            "import os\nprint(open(f'/proc/{os.getppid()}/environ').read())",
            "reading is not allowed",
        ),
        ("open a socket", "import socket\nsocket.socket().connect(('1.1.1.1', 80))", "no network"),
        ("dns lookup", "import socket\nsocket.getaddrinfo('example.com', 80)", "no network"),
        (
            "write outside",
            "open('/tmp/miva-escape-test', 'w').write('x')",
            "outside the working directory",
        ),
        (
            "write via parent dir",
            "import pathlib\npathlib.Path('../miva-escape-test').write_text('x')",
            "outside the working directory",
        ),
        (
            "delete outside",
            "import os\nos.remove('/tmp/miva-escape-keep')",
            "outside the working directory",
        ),
        ("symlink out", "import os\nos.symlink('/etc', 'etc')", "os.symlink is not allowed"),
        (
            "kill the parent",
            "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
            "os.kill is not allowed",
        ),
        ("ctypes", "import ctypes", "import ctypes is not allowed"),
        (
            "ctypes already loaded",
            "import numpy\nnumpy._core._internal.ctypes.CDLL(None)",
            "not allowed",
        ),
        ("list the host", "import os\nprint(os.listdir('/root'))", "not allowed"),
    ],
)
def test_escape_attempts_are_contained(name, code, fragment, tmp_path):
    keep = "/tmp/miva-escape-keep"
    with open(keep, "w") as f:
        f.write("keep")
    res = run(code)
    assert not res.ok, f"{name}: {res.stdout!r}"
    assert fragment in res.error, f"{name}: {res.error!r}"
    assert len(res.stdout) <= LIMITS.output_bytes + 60
    assert not os.path.exists("/tmp/miva-escape-test")
    assert os.path.exists(keep)


def test_environment_holds_no_secrets(monkeypatch):
    monkeypatch.setenv("MIVA_TEST_SECRET", "hunter2")
    res = run("import os\nprint(sorted(os.environ))")
    assert res.ok and "MIVA_TEST_SECRET" not in res.stdout and "hunter2" not in res.stdout
    assert "AWS" not in res.stdout


def test_no_process_survives_the_call():
    # the child daemonises a grandchild would need fork (blocked); a busy child is killed at the wall limit
    res = run("import time\nwhile True: time.sleep(0.01)")
    assert not res.ok and "wall-clock" in res.error


def test_network_namespace_is_used_when_available():
    res = run("print(1)")
    assert res.network_namespace == network_namespace_available()
