"""The sandbox service on loopback: a real server (in this process, and `miva sandbox serve`
as its own process) answering the real client; a server that is down, one that never
answers and one that drips bytes all end as bounded error results, never a hung call."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from PIL import Image

from miva.agent.sandbox import make_sandbox
from miva.agent.sandbox.limits import SandboxLimits
from miva.agent.sandbox.local import bwrap_problem
from miva.agent.sandbox.service import ServiceSandbox, serve
from miva.config import PythonToolConfig

LIMITS = SandboxLimits(cpu_seconds=2, wall_seconds=3.0, memory_mb=256, output_bytes=300)
IMAGES = [Image.new("RGB", (64, 48), (0, 255, 0))]
pytestmark = pytest.mark.skipif(
    bwrap_problem() is not None, reason=f"no kernel isolation on this host: {bwrap_problem()}"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    srv = serve("127.0.0.1", 0, LIMITS, max_concurrent=2, prestart=1)
    yield srv
    srv.close()


def test_a_call_through_the_service_returns_stdout_and_an_image(server):
    client = ServiceSandbox(server.url, LIMITS)
    res = client.run(
        "print(images[0].size, int(np.asarray(images[0])[..., 1].mean()))\n"
        "images[0].resize((8, 8)).save('output.png')",
        IMAGES,
    )
    assert res.ok, res.error
    assert res.stdout.strip() == "(64, 48) 255"
    assert res.image is not None and res.image.size == (8, 8)
    assert res.mode.startswith("service:kernel")
    assert client.mode == res.mode


def test_errors_and_limits_come_back_as_results(server):
    client = ServiceSandbox(server.url, LIMITS)
    assert "ZeroDivisionError" in client.run("1/0", IMAGES).error
    t0 = time.monotonic()
    res = client.run("import time\ntime.sleep(100)", IMAGES)
    assert "wall-clock limit of 3 s" in res.error
    assert time.monotonic() - t0 < LIMITS.wall_seconds + 5


def test_the_server_never_grants_more_than_its_own_limits(server):
    greedy = SandboxLimits(**{**LIMITS.to_dict(), "wall_seconds": 60.0, "memory_mb": 100_000})
    client = ServiceSandbox(server.url, greedy)
    t0 = time.monotonic()
    res = client.run("import time\ntime.sleep(100)", IMAGES)
    assert "wall-clock limit of 3 s" in res.error
    assert time.monotonic() - t0 < LIMITS.wall_seconds + 5


def test_bad_requests_get_clear_http_errors(server):
    def post(body: bytes) -> tuple[int, dict]:
        req = urllib.request.Request(f"{server.url}/run", data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    assert post(b"not json")[0] == 400
    assert post(json.dumps({"code": 1}).encode())[0] == 400
    status, body = post(json.dumps({"code": "", "images": ["***"]}).encode())
    assert status == 400 and "base64" in body["error"]
    status, body = post(json.dumps({"code": "", "limits": {"gpu": 1}}).encode())
    assert status == 400 and "unknown key" in body["error"]
    with urllib.request.urlopen(f"{server.url}/healthz", timeout=10) as resp:
        health = json.loads(resp.read())
    assert health["mode"].startswith("kernel") and health["limits"]["wall_seconds"] == 3.0


def test_a_server_that_is_down_is_an_error_result_at_once():
    client = ServiceSandbox(f"http://127.0.0.1:{_free_port()}", LIMITS, slack_seconds=1.0)
    t0 = time.monotonic()
    res = client.run("print(1)", IMAGES)
    assert not res.ok and "is unavailable" in res.error and "Connection refused" in res.error
    assert time.monotonic() - t0 < 2
    assert client.mode == "service:unreachable"


@pytest.mark.parametrize("behaviour", ["silent", "drip"])
def test_a_server_that_hangs_or_drips_cannot_hang_the_call(behaviour):
    """A listener that accepts and never answers, or answers one byte at a time forever."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()

    def hold():
        conn, _ = listener.accept()
        conn.recv(65536)
        if behaviour == "drip":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        while not stop.is_set():
            if behaviour == "drip":
                try:
                    conn.sendall(b" ")
                except OSError:
                    break
            time.sleep(0.2)
        conn.close()

    threading.Thread(target=hold, daemon=True).start()
    limits = SandboxLimits(**{**LIMITS.to_dict(), "wall_seconds": 1.0, "startup_seconds": 1.0})
    client = ServiceSandbox(
        f"http://127.0.0.1:{listener.getsockname()[1]}", limits, slack_seconds=0.5
    )
    t0 = time.monotonic()
    res = client.run("print(1)", IMAGES)
    elapsed = time.monotonic() - t0
    stop.set()
    listener.close()
    assert not res.ok and "is unavailable" in res.error
    assert 2.0 <= elapsed < 4.0


def test_the_python_tool_uses_the_service_when_configured(server):
    cfg = PythonToolConfig(backend="service", service_url=server.url)
    sandbox = make_sandbox(cfg)
    assert isinstance(sandbox, ServiceSandbox)
    assert sandbox.run("print(2 + 2)", []).stdout.strip() == "4"


def test_miva_sandbox_serve_as_its_own_process():
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "miva.cli",
            "sandbox",
            "serve",
            "--port",
            str(port),
            "--set",
            "agent.python.wall_seconds=3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline()
        assert "serving on http://127.0.0.1:" in line and "kernel isolation" in line, line
        client = ServiceSandbox(f"http://127.0.0.1:{port}", LIMITS)
        res = client.run("import os\nprint(os.getpid(), sorted(os.environ))", [])
        assert res.ok, res.error
        pid, names = res.stdout.split(" ", 1)
        assert int(pid) <= 3  # a fresh PID namespace
        assert "AWS" not in names and "MIVA" not in names
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
