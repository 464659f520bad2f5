"""Tools the agent can call, by name: zoom, view (IMAgent), python, search (Visual-ARFT).

`build_tools(agent_cfg) -> dict[name, Tool]`; each Tool has `schema()` (goes into the
system prompt) and `__call__(arguments, ToolContext) -> ToolResult`, which never raises
on bad arguments: the message comes back to the model as an error result.
"""

from __future__ import annotations

from miva.agent.tools.base import Tool, ToolArgumentError, ToolContext, ToolResult, validate
from miva.errors import ConfigError

KNOWN = ("zoom", "view", "python", "search")

__all__ = [
    "KNOWN",
    "Tool",
    "ToolArgumentError",
    "ToolContext",
    "ToolResult",
    "build_tools",
    "validate",
]


def build_tools(agent_cfg) -> dict[str, Tool]:
    tools: dict[str, Tool] = {}
    for name in agent_cfg.tools:
        if name == "zoom":
            from miva.agent.tools.zoom import Zoom

            tools[name] = Zoom(agent_cfg.zoom_upscale_to)
        elif name == "view":
            from miva.agent.tools.view import View

            tools[name] = View()
        elif name == "python":
            from miva.agent.sandbox import make_sandbox
            from miva.agent.tools.python import Python

            tools[name] = Python(make_sandbox(agent_cfg.python))
        elif name == "search":
            from miva.agent.tools.search import BM25, HTTPBackend, Search, load_corpus

            s = agent_cfg.search
            if s.endpoint:
                backend = HTTPBackend(s.endpoint)
            elif s.corpus:
                backend = BM25(load_corpus(s.corpus))
            else:
                raise ConfigError(
                    "agent.tools has `search` but neither agent.search.corpus nor agent.search.endpoint is set"
                )
            tools[name] = Search(backend, s.top_k)
        else:
            raise ConfigError(f"unknown tool {name!r}; known: {KNOWN}")
    return tools
