"""`miva serve`: the agent behind an OpenAI-compatible chat endpoint.

    miva serve models:/miva-agent@champion          # or a folder, an s3:// URI, tiny-random

API (FastAPI on uvicorn; imported lazily, `import miva.serve` stays cheap):

- `serve.resolve.resolve_model(uri, cfg) -> ModelSource` (folder, served name, registered
  version and LoggedModel id for registry URIs);
- `serve.agent.ServedAgent(source, cfg, tracer=None)`: the model and tools, loaded once;
  `run(prepared_batch)` is one batched multi-turn rollout; `prepare(request, names, cfg)`
  validates a request and decodes its images (`serve.images`);
- `serve.batcher.DynamicBatcher`: concurrent requests -> one rollout batch
  (`serve.max_batch_size`, `serve.max_wait_ms`);
- `serve.app.build_app(served, cfg) -> FastAPI`, `serve.app.BackgroundServer(app).start()`;
- `serve.run(cfg, model_uri)`: resolve, load, serve until interrupted (the CLI).
"""

from __future__ import annotations

from typing import Any


def build(cfg: Any, model_uri: str):
    """(app, served agent) for `model_uri` under `cfg` (no server started yet)."""
    from miva.serve.agent import ServedAgent
    from miva.serve.app import build_app
    from miva.serve.resolve import resolve_model

    source = resolve_model(model_uri, cfg)
    tracer = None
    if cfg.serve.trace_requests:
        from miva.serve.tracing import RequestTracer

        tracer = RequestTracer(cfg, source)
    served = ServedAgent(source, cfg, tracer=tracer)
    return build_app(served, cfg), served


def run(cfg: Any, model_uri: str) -> None:
    """Serve until interrupted (SIGINT / SIGTERM end uvicorn cleanly)."""
    import uvicorn

    app, served = build(cfg, model_uri)
    name = cfg.serve.model_name or served.source.name
    print(
        f"serving {model_uri} as {name!r} on http://{cfg.serve.host}:{cfg.serve.port}/v1 "
        f"(batch <= {cfg.serve.max_batch_size}, wait {cfg.serve.max_wait_ms:g} ms)",
        flush=True,
    )
    uvicorn.run(app, host=cfg.serve.host, port=cfg.serve.port, log_level="info")
