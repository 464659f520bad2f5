"""`miva registry show|promote|rollback|deploy`: the model registry's aliases by hand, and
the champion as a KServe InferenceService."""

from __future__ import annotations

import argparse
from pathlib import Path

from miva.cli.base import Command, shorthand
from miva.config import MivaConfig
from miva.errors import MivaError


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["show", "promote", "rollback", "deploy"])
    p.add_argument(
        "--version",
        help="model version (promote: required; rollback: target, default previous; "
        "deploy: default the champion)",
    )
    shorthand(
        p, "--apply", "registry.deploy.apply", "deploy: kubectl apply the manifest", const=True
    )
    shorthand(p, "--output", "registry.deploy.output", "deploy: where the manifest is written")


def _run(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva.registry import registry

    if args.action == "deploy":
        return _deploy(args, cfg)
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


def _deploy(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva.registry.deploy import deploy

    path = deploy(cfg, args.version)
    print(Path(path).read_text() if Path(path).is_file() else "")
    print(f"wrote {path}" + (" and applied it" if cfg.registry.deploy.apply else ""))
    return 0


COMMANDS = (
    Command(
        "registry",
        "show or move registry aliases by hand; deploy the champion on KServe",
        _args,
        _run,
    ),
)
