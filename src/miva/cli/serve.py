"""`miva serve MODEL`: the agent behind an OpenAI-compatible chat endpoint."""

from __future__ import annotations

import argparse

from miva.cli.base import Command, shorthand
from miva.config import MivaConfig


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model", help="model folder, s3:// URI, models:/NAME@ALIAS or models:/NAME/VERSION"
    )
    shorthand(p, "--host", "serve.host", "address to listen on")
    shorthand(p, "--port", "serve.port", "port to listen on", type=int)
    shorthand(p, "--name", "serve.model_name", "model name clients send")


def _run(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva import serve

    serve.run(cfg, args.model)
    return 0


COMMANDS = (Command("serve", "serve a model behind an OpenAI-compatible endpoint", _args, _run),)
