"""`miva bench list`: the public benchmark adapters `miva evaluate --bench` reads."""

from __future__ import annotations

import argparse

from miva.cli.base import Command
from miva.config import MivaConfig


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list"], help="list the benchmark adapters")


def _list(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva.data.benchmarks import BENCHMARKS

    for cls in BENCHMARKS.values():
        bench = cls()
        tools = f"\n  tools: {', '.join(bench.tools)}" if bench.tools else ""
        print(bench.describe() + tools + "\n")
    return 0


COMMANDS = (Command("bench", "public benchmark adapters", _args, _list),)
