"""`miva registry show|promote|rollback`: the model registry's aliases by hand."""

from __future__ import annotations

import argparse

from miva.cli.base import Command
from miva.config import MivaConfig
from miva.errors import MivaError


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["show", "promote", "rollback"])
    p.add_argument(
        "--version", help="model version (promote: required; rollback: target, default previous)"
    )


def _run(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva.registry import registry

    if args.action == "promote":
        if not args.version:
            raise MivaError("`miva registry promote` needs --version N")
        registry.promote(cfg, args.version)
        print(f"{cfg.registry.model_name} v{args.version} is now champion")
    elif args.action == "rollback":
        target = registry.rollback(cfg, args.version)
        print(f"{cfg.registry.model_name}: champion rolled back to v{target}")
    print(registry.show(cfg))
    return 0


COMMANDS = (Command("registry", "show or move registry aliases by hand", _args, _run),)
