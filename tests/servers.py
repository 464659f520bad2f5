"""Real servers on loopback for integration tests: PostgreSQL, a moto S3 server, an MLflow
tracking server, and `FailFirstNProxy` (a real HTTP proxy that answers 503 to the first N
requests it sees, then forwards to its upstream).

Nothing here is mocked: each server is a process or thread listening on 127.0.0.1.
"""

from __future__ import annotations

import glob
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except Exception as exc:
            last = exc
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout}s ({last})")


# ---------------------------------------------------------------------------- moto S3


class MotoS3:
    """moto's ThreadedMotoServer: a real S3-compatible HTTP endpoint in a thread."""

    def __init__(self) -> None:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoS3:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)


# ---------------------------------------------------------------------------- flaky proxy


class FailFirstNProxy:
    """A real HTTP server that answers 503 Service Unavailable to the first `n` requests
    matching `match` (all by default) and forwards every other request to `upstream`."""

    def __init__(
        self, upstream: str, n: int, match: Callable[[str, str], bool] | None = None
    ) -> None:
        self.upstream = upstream.removeprefix("http://").rstrip("/")
        self.n = n
        self.match = match or (lambda method, path: True)
        self.failed = 0
        self.forwarded = 0
        self.lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> FailFirstNProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", ""):
                    out = b""
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _serve(self) -> None:
                body = self._body()
                with proxy.lock:
                    fail = proxy.failed < proxy.n and proxy.match(self.command, self.path)
                    if fail:
                        proxy.failed += 1
                    else:
                        proxy.forwarded += 1
                if fail:
                    payload = (
                        b"<?xml version='1.0'?><Error><Code>ServiceUnavailable</Code>"
                        b"<Message>injected by FailFirstNProxy</Message></Error>"
                    )
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in {"host", "transfer-encoding", "connection"}
                }
                headers["Host"] = proxy.upstream
                headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(proxy.upstream, timeout=120)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in {"transfer-encoding", "connection", "content-length"}:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _serve

        return Handler


# ---------------------------------------------------------------------------- PostgreSQL


def postgres_bindir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class Postgres:
    """A throwaway PostgreSQL cluster in a temp folder, on a free loopback port.

    `initdb` refuses to run as root, so as root the cluster belongs to the `postgres` user.
    """

    def __init__(self) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL binaries not found: run `make system-deps`")
        self.bindir = bindir
        self.tmp = Path(tempfile.mkdtemp(prefix="miva-pg-"))
        self.data = self.tmp / "data"
        self.port = free_port()
        self.user = "postgres"

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, cwd=self.tmp)

    def start(self) -> Postgres:
        if os.geteuid() == 0:
            shutil.chown(self.tmp, "postgres", "postgres")
        else:
            self.user = os.environ.get("USER") or "postgres"
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--auth=trust",
            "-E",
            "UTF8",
        )
        opts = f"-p {self.port} -k {self.tmp} -h 127.0.0.1 -c fsync=off"
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.tmp / "log"),
            "-w",
            "start",
        )
        return self

    def create_db(self, name: str) -> str:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------------------- MLflow server


class MlflowServer:
    """`mlflow server` with a PostgreSQL backend and artifacts proxied to an S3 bucket."""

    def __init__(self, backend_uri: str, artifacts: str, s3_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.backend_uri = backend_uri
        self.artifacts = artifacts
        self.env = {
            **os.environ,
            **DUMMY_AWS,
            "MLFLOW_S3_ENDPOINT_URL": s3_url,
            "AWS_ENDPOINT_URL_S3": s3_url,
            # No background job runners (huey consumers): the tests need only the API.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (kept open for the server's life)
            prefix="miva-mlflow-", suffix=".log", delete=False
        )
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 150) -> MlflowServer:
        mlflow = Path(sys.executable).with_name("mlflow")
        self.proc = subprocess.Popen(
            [
                str(mlflow),
                "server",
                "--backend-store-uri",
                self.backend_uri,
                "--artifacts-destination",
                self.artifacts,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_http(f"{self.url}/health", timeout, self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(
                f"mlflow server did not start; log:\n{Path(self.log.name).read_text()[-4000:]}"
            ) from None
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 2)  # SIGINT: uvicorn shuts down at once
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
