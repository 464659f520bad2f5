"""`miva sandbox serve`: the python tool's sandbox behind HTTP (the cluster's sandbox
service, `agent.python.backend = service`)."""

from __future__ import annotations

import argparse

from miva.cli.base import Command, shorthand
from miva.config import MivaConfig


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["serve"], help="serve: run the python sandbox service")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (a pod: 0.0.0.0)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on")
    p.add_argument("--max-concurrent", type=int, default=2, help="calls run at the same time")
    shorthand(
        p,
        "--allow-weak-isolation",
        "agent.python.allow_weak_isolation",
        "run in the audit-hook mode where namespaces are unavailable (the pod is then the "
        "boundary)",
        const=True,
    )
    p.add_argument(
        "--delegate-cgroup",
        action="store_true",
        help="cgroup v2: move this process into a leaf cgroup so that each call gets a "
        "cgroup of its own (a container whose cgroup is writable)",
    )


def _run(args: argparse.Namespace, cfg: MivaConfig) -> int:
    import signal
    import threading

    from miva.agent.sandbox import cgroups
    from miva.agent.sandbox.limits import SandboxLimits
    from miva.agent.sandbox.service import serve

    if args.delegate_cgroup and not cgroups.delegate_v2():
        print("warning: could not delegate a cgroup v2 subtree; calls use rlimits only")
    py = cfg.agent.python
    server = serve(
        args.host,
        args.port,
        SandboxLimits.from_config(py),
        allow_weak=py.allow_weak_isolation,
        max_concurrent=args.max_concurrent,
    )
    print(
        f"miva sandbox: serving on {server.url} ({server.sandbox.isolation.describe()})", flush=True
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.close()
    return 0


COMMANDS = (Command("sandbox", "serve the python tool's sandbox over HTTP", _args, _run),)
