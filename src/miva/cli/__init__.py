"""The `miva` command: the six pipeline stages and the tools around them, thin shells.

Every command takes `-c/--config PRESET` (a name in configs/ or a YAML path) and any number
of `--set key.path=value` overrides. Errors meant for users (`MivaError`) print one
readable message and exit non-zero; anything else is a bug and keeps its traceback.

Commands live in one module per group (`GROUPS`), each exporting `COMMANDS`; a new command
is a new module (or a `Command` in one) and one line here. Old command names still work
and say which name replaced them (`DEPRECATED`).
"""

from __future__ import annotations

import argparse
import sys
import warnings

from miva import __version__
from miva.cli import agent, bench, config, pipeline, pretrain, registry, sandbox, serve, stages
from miva.cli.base import Command
from miva.config import DEFAULT_PRESET, load_config
from miva.errors import MivaError

GROUPS = (config, stages, pretrain, agent, bench, registry, serve, pipeline, sandbox)
COMMANDS: dict[str, Command] = {c.name: c for group in GROUPS for c in group.COMMANDS}

# Old command name -> the command that replaced it (one name per stage, as the DAG names it).
DEPRECATED = {"synth": "synthesize", "train": "grpo", "eval": "evaluate"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="miva",
        description=__doc__.splitlines()[0],
        epilog="renamed commands (still accepted): "
        + ", ".join(f"{old} -> {new}" for old, new in DEPRECATED.items()),
    )
    parser.add_argument("--version", action="version", version=f"miva {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        p.add_argument(
            "-c",
            "--config",
            default=DEFAULT_PRESET,
            help="preset name in configs/ or a YAML path (default: %(default)s)",
        )
        p.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config value, e.g. grpo.lr=1e-5 (`miva config show` lists them)",
        )
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
        command.add_arguments(p)
    return parser


def _warn(message, category, filename, lineno, file=None, line=None) -> None:
    """Deprecations and other warnings as one line each, not a source excerpt."""
    print(f"miva: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DEPRECATED:
        print(
            f"miva: warning: `miva {argv[0]}` is deprecated; use `miva {DEPRECATED[argv[0]]}`",
            file=sys.stderr,
        )
        argv[0] = DEPRECATED[argv[0]]
    args = build_parser().parse_args(argv)
    command = COMMANDS[args.command]
    with warnings.catch_warnings():
        warnings.simplefilter("default", FutureWarning)
        warnings.showwarning = _warn
        try:
            cfg = load_config(args.config, args.overrides)
            return int(command.run(args, cfg) or 0)
        except MivaError as exc:
            print(f"miva {args.command}: error: {exc}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:
            print(f"miva {args.command}: interrupted", file=sys.stderr)
            return 130
