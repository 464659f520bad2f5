"""`miva config show`: the resolved config, every setting with its description."""

from __future__ import annotations

import argparse
import json

from miva.cli.base import Command
from miva.config import MivaConfig, describe


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["show"], nargs="?", default="show")
    p.add_argument("--json", action="store_true", help="print the resolved config as JSON")


def _show(args: argparse.Namespace, cfg: MivaConfig) -> int:
    print(json.dumps(cfg.to_dict(), indent=2) if args.json else "\n".join(describe(cfg)))
    return 0


COMMANDS = (Command("config", "show the resolved config with descriptions", _args, _show),)
