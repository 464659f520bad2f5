"""The ASGI app (FastAPI on uvicorn): OpenAI-compatible routes over a `DynamicBatcher`.

Routes: `POST /v1/chat/completions`, `GET /v1/models`, `GET /health` (liveness and
readiness: 200 once the model is loaded, with the batcher's counters).

Every client mistake is a 4xx with OpenAI's error body (`{"error": {"message", "type",
"param", "code"}}`): invalid JSON or fields (400), no image where one is needed (400), an
image that does not decode (400), too many images (400), a body or image over the limits
(413), an unknown model (404). A failure inside the rollout answers 500 for that request
only; the server keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

# fastapi resolves route annotations from this module's globals, so its names live here;
# only `miva serve` imports this module.
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from miva.serve.agent import Answer, Prepared, ServedAgent, prepare
from miva.serve.batcher import DynamicBatcher, Job
from miva.serve.schema import ApiError, ChatRequest


async def read_body(request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(
            413, f"request body is {declared} bytes; this server takes at most {limit}", None
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is larger than this server's {limit} bytes", None)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_request(body: bytes) -> ChatRequest:
    from pydantic import ValidationError

    try:
        raw = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ApiError(400, "the request body must be a JSON object")
    try:
        return ChatRequest.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ApiError(400, f"{loc}: {err['msg']}{more}", loc or None) from None


def completion_body(prepared: Prepared, answers: list[Answer], model: str) -> dict[str, Any]:
    choices = []
    for i, a in enumerate(answers):
        choice: dict[str, Any] = {
            "index": i,
            "message": {"role": "assistant", "content": a.text},
            "finish_reason": a.finish_reason,
            "logprobs": None,
        }
        if a.trajectory is not None:
            choice["miva_trajectory"] = a.trajectory
        choices.append(choice)
    prompt = answers[0].prompt_tokens if answers else 0
    completion = sum(a.completion_tokens for a in answers)
    return {
        "id": prepared.id,
        "object": "chat.completion",
        "created": int(prepared.received),
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def build_app(served: ServedAgent, cfg: Any, names: list[str] | None = None):
    """The FastAPI app answering for `served` under `names` (default: the source's name)."""
    from contextlib import asynccontextmanager

    from starlette.concurrency import run_in_threadpool

    scfg = cfg.serve
    names = names or [scfg.model_name or served.source.name]
    batcher = DynamicBatcher(served.run, scfg.max_batch_size, scfg.max_wait_ms / 1000)
    started = time.time()

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        try:
            yield
        finally:
            batcher.stop()
            if served.tracer is not None:
                served.tracer.close()

    app = FastAPI(title="MIVA agent", version="1", lifespan=lifespan)
    app.state.batcher, app.state.served = batcher, served

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        err = ApiError(500, f"internal error: {type(exc).__name__}: {exc}")
        return JSONResponse(err.body(), status_code=500)

    @app.get("/health")
    async def health():
        return {"status": "ok", "models": names, **batcher.stats.as_dict()}

    @app.get("/v1/models")
    async def models():
        data = []
        for name in names:
            entry: dict[str, Any] = {
                "id": name,
                "object": "model",
                "created": int(started),
                "owned_by": "miva",
            }
            if served.source.version:
                entry["miva_version"] = served.source.version
            data.append(entry)
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await read_body(request, scfg.max_request_bytes)
        req = parse_request(body)
        prepared = await run_in_threadpool(prepare, req, names, cfg)
        future = batcher.submit(Job(prepared, prepared.key, size=prepared.n))
        try:
            answers = await asyncio.wait_for(asyncio.wrap_future(future), scfg.request_timeout_s)
        except TimeoutError:
            future.cancel()
            raise ApiError(
                504, f"no answer within serve.request_timeout_s={scfg.request_timeout_s:g}s"
            ) from None
        return completion_body(prepared, answers, req.model)

    return app


class BackgroundServer:
    """A real uvicorn server on a thread (tests, benchmarks, embedding); `stop()` ends it."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        import socket

        import uvicorn

        if port == 0:
            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        self.url = f"http://{host}:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, name="miva-serve", daemon=True)

    def start(self, timeout: float = 60.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
