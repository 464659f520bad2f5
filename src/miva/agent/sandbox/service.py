"""The sandbox behind HTTP, for clusters: `miva sandbox serve` and its client.

Pods usually cannot create namespaces (the default seccomp profile refuses `unshare`
without CAP_SYS_ADMIN), so on a cluster the rollout workers send code to a separate
Deployment (infra/k8s/sandbox/): non-root, read-only root file system, no service-account
token, a NetworkPolicy that denies all egress, optionally a gVisor RuntimeClass. Inside
it, each call runs in the same `LocalSandbox` as on a laptop: kernel-isolated where the
runtime allows namespaces (gVisor does), else in the weak mode the server was explicitly
started with (`--allow-weak-isolation`), the pod then being the boundary.

Wire format (JSON both ways):
  POST /run  {"code": str, "images": [base64 PNG], "limits": {...}?}
         ->  {"ok", "stdout", "error", "image": base64 PNG | null, "mode", "peak_memory_bytes"}
  GET /healthz -> {"mode", "limits", "running", "max_concurrent"}
The server caps the limits a client asks for at its own, refuses bodies over
`MAX_BODY_BYTES`, and answers 503 when all its slots stay busy for `queue_seconds`.
The client never waits longer than wall + startup + `NETWORK_SLACK_SECONDS`: a server that
is down, slow or garbled becomes an error result for the model, never a hung rollout.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import io
import json
import logging
import threading
import time
from dataclasses import fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

from miva.agent.sandbox.limits import SandboxLimits, SandboxResult
from miva.agent.sandbox.local import LocalSandbox, load_output_image

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_RESPONSE_BYTES = 96 * 1024 * 1024
NETWORK_SLACK_SECONDS = 5.0


# ---------------------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    server: SandboxServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path != "/healthz":
            self._reply(404, {"error": f"unknown path {self.path}; GET /healthz, POST /run"})
            return
        self._reply(200, self.server.health())

    def do_POST(self) -> None:
        if self.path != "/run":
            self._reply(404, {"error": f"unknown path {self.path}; POST /run"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._reply(411, {"error": "Content-Length is required"})
            return
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            self._reply(413, {"error": f"body over {MAX_BODY_BYTES} bytes"})
            return
        try:
            code, pngs, limits = _parse_request(self.rfile.read(length), self.server.limits)
        except ValueError as exc:
            self._reply(400, {"error": str(exc)})
            return
        status, body = self.server.run(code, pngs, limits)
        self._reply(status, body)


class SandboxServer(ThreadingHTTPServer):
    """An HTTP server whose calls each run in a fresh `LocalSandbox` sandbox."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        sandbox: LocalSandbox,
        max_concurrent: int = 2,
        queue_seconds: float = 10.0,
    ):
        super().__init__(address, _Handler)
        self.sandbox = sandbox
        self.limits = sandbox.limits
        self.max_concurrent = max_concurrent
        self.queue_seconds = queue_seconds
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._running = 0
        self._count = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def health(self) -> dict[str, Any]:
        return {
            "mode": self.sandbox.mode,
            "limits": self.limits.to_dict(),
            "running": self._running,
            "max_concurrent": self.max_concurrent,
        }

    def run(self, code: str, pngs: list[bytes], limits: SandboxLimits) -> tuple[int, dict]:
        if not self._slots.acquire(timeout=self.queue_seconds):
            return 503, {"error": f"all {self.max_concurrent} sandbox slots busy"}
        with self._count:
            self._running += 1
        try:
            res = self.sandbox.run_png(code, pngs, limits)
        finally:
            with self._count:
                self._running -= 1
            self._slots.release()
        image = None
        if res.image is not None:
            buf = io.BytesIO()
            res.image.save(buf, format="PNG")
            image = base64.b64encode(buf.getvalue()).decode()
        return 200, {
            "ok": res.ok,
            "stdout": res.stdout,
            "error": res.error,
            "image": image,
            "mode": res.mode,
            "peak_memory_bytes": res.peak_memory_bytes,
        }

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.sandbox.close()


def _parse_request(body: bytes, ceiling: SandboxLimits) -> tuple[str, list[bytes], SandboxLimits]:
    try:
        req = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(req, dict) or not isinstance(req.get("code"), str):
        raise ValueError('body must be an object with a string "code"')
    images = req.get("images", [])
    if not isinstance(images, list) or not all(isinstance(x, str) for x in images):
        raise ValueError('"images" must be a list of base64 strings')
    try:
        pngs = [base64.b64decode(x, validate=True) for x in images]
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f'"images" holds invalid base64: {exc}') from None
    asked = req.get("limits") or {}
    if not isinstance(asked, dict):
        raise ValueError('"limits" must be an object')
    known = {f.name: f.type for f in fields(SandboxLimits)}
    unknown = sorted(set(asked) - set(known))
    if unknown:
        raise ValueError(f'"limits" has unknown key(s) {unknown}; known: {sorted(known)}')
    try:
        values = {**ceiling.to_dict(), **{k: float(v) for k, v in asked.items()}}
        for k in ("cpu_seconds", "memory_mb", "output_bytes", "processes", "disk_mb"):
            values[k] = int(values[k])
        limits = SandboxLimits(**values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f'"limits" values must be numbers: {exc}') from None
    if any(v <= 0 for v in limits.to_dict().values()):
        raise ValueError('"limits" values must be positive')
    return req["code"], pngs, limits.capped_by(ceiling)


def serve(
    host: str,
    port: int,
    limits: SandboxLimits,
    allow_weak: bool = False,
    max_concurrent: int = 2,
    prestart: int | None = None,
) -> SandboxServer:
    """A started server (serving in a background thread); `close()` stops it."""
    sandbox = LocalSandbox(
        limits, allow_weak=allow_weak, prestart=max_concurrent if prestart is None else prestart
    )
    server = SandboxServer((host, port), sandbox, max_concurrent=max_concurrent)
    threading.Thread(target=server.serve_forever, name="miva-sandbox-http", daemon=True).start()
    return server


# ---------------------------------------------------------------------------- client


class ServiceSandbox:
    """Client of the sandbox service with the `LocalSandbox` interface; every failure is
    an error result within wall + startup + NETWORK_SLACK_SECONDS."""

    def __init__(
        self,
        url: str,
        limits: SandboxLimits | None = None,
        slack_seconds: float = NETWORK_SLACK_SECONDS,
    ):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"sandbox service URL {url!r} must look like http://host:port")
        self.url = url.rstrip("/")
        self._parts = parts
        self.limits = limits or SandboxLimits()
        self.slack_seconds = slack_seconds
        self._mode: str | None = None

    @property
    def mode(self) -> str:
        """`service:<the server's mode>`; asked once, `service:unreachable` until it answers."""
        if self._mode is None:
            status, body = self._call("GET", "/healthz", None, timeout=self.slack_seconds)
            if status == 200 and isinstance(body, dict) and isinstance(body.get("mode"), str):
                self._mode = f"service:{body['mode']}"
            else:
                return "service:unreachable"
        return self._mode

    def _call(
        self, method: str, path: str, payload: bytes | None, timeout: float
    ) -> tuple[int, Any]:
        """(HTTP status, parsed JSON) or (0, reason) when there was no usable answer."""
        deadline = time.monotonic() + timeout
        conn_cls = (
            http.client.HTTPSConnection
            if self._parts.scheme == "https"
            else http.client.HTTPConnection
        )
        conn = conn_cls(self._parts.hostname, self._parts.port, timeout=timeout)
        base = self._parts.path.rstrip("/")
        try:
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            conn.request(method, base + path, body=payload, headers=headers)
            resp = conn.getresponse()
            chunks, size = [], 0
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return 0, f"no complete answer within {timeout:g} s"
                if conn.sock is not None:
                    conn.sock.settimeout(left)
                chunk = resp.read1(1 << 16) if hasattr(resp, "read1") else resp.read(1 << 16)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    return 0, f"answer over {MAX_RESPONSE_BYTES} bytes"
                chunks.append(chunk)
            try:
                return resp.status, json.loads(b"".join(chunks))
            except (json.JSONDecodeError, UnicodeDecodeError):
                return 0, f"HTTP {resp.status} with a body that is not JSON"
        except TimeoutError:
            return 0, f"no answer within {timeout:g} s"
        except (OSError, http.client.HTTPException) as exc:
            return 0, f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()

    def run(
        self, code: str, images: list[Image.Image], limits: SandboxLimits | None = None
    ) -> SandboxResult:
        lim = limits or self.limits
        encoded = []
        for img in images:
            buf = io.BytesIO()
            img.save(buf, format="PNG", compress_level=1)
            encoded.append(base64.b64encode(buf.getvalue()).decode())
        payload = json.dumps({"code": code, "images": encoded, "limits": lim.to_dict()}).encode()
        timeout = lim.wall_seconds + lim.startup_seconds + self.slack_seconds
        status, body = self._call("POST", "/run", payload, timeout)
        where = f"the python sandbox service at {self.url}"
        if status == 0:
            return SandboxResult(False, "", f"{where} is unavailable ({body})", mode="service")
        if status != 200 or not isinstance(body, dict):
            reason = body.get("error") if isinstance(body, dict) else body
            return SandboxResult(False, "", f"{where} answered {status}: {reason}", mode="service")
        image, error = None, str(body.get("error") or "")
        if body.get("image"):
            try:
                image, problem = load_output_image(base64.b64decode(body["image"]))
            except (binascii.Error, ValueError) as exc:
                image, problem = None, f"the service sent an unreadable image ({exc})"
            error = error or problem
        peak = body.get("peak_memory_bytes")
        return SandboxResult(
            bool(body.get("ok")) and not error,
            str(body.get("stdout") or "")[: lim.output_bytes + 64],
            error,
            image,
            f"service:{body.get('mode', '?')}",
            peak if isinstance(peak, int) else None,
        )

    def close(self) -> None:
        pass
