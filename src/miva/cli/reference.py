"""The reference pages generated from the code (docs/configuration.md, docs/metrics.md,
docs/cli.md): the documentation build inserts them, so they cannot drift from it."""

from __future__ import annotations

import json
from collections.abc import Callable


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def configuration() -> str:
    """Every section and setting: key, type, default, description."""
    from miva.config import sections

    out: list[str] = []
    for section in sections():
        title = section.key or "top level"
        out += [f"## `{title}`" if section.key else "## Top level", ""]
        if section.description:
            out += [section.description, ""]
        if not section.fields:
            continue
        out += ["| key | type | default | what it does |", "|---|---|---|---|"]
        for f in section.fields:
            default = json.dumps(f.default, default=str)
            out.append(
                f"| `{f.key}` | `{_cell(f.type)}` | `{_cell(default)}` | {_cell(f.description)} |"
            )
        out.append("")
    return "\n".join(out)


def metrics() -> str:
    """The glossary, grouped by the stage that logs each metric."""
    from miva.metric_names import GLOSSARY

    out: list[str] = []
    for stage in dict.fromkeys(m.stage for m in GLOSSARY):
        out += [f"## {stage}", "", "| metric | meaning |", "|---|---|"]
        out += [f"| `{m.pattern}` | {_cell(m.meaning)} |" for m in GLOSSARY if m.stage == stage]
        out.append("")
    return "\n".join(out)


def commands() -> str:
    """`miva COMMAND --help` of every command."""
    import os

    from miva.cli import COMMANDS, DEPRECATED, build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: the page should not
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")  # the subcommand parsers
    out = ["```text", parser.format_help().rstrip(), "```", ""]
    for name in COMMANDS:
        out += [f"## `miva {name}`", "", "```text", sub.choices[name].format_help().rstrip()]
        out += ["```", ""]
    out.append(
        "Renamed commands still run and print the new name: "
        + ", ".join(f"`{old}` -> `{new}`" for old, new in DEPRECATED.items())
        + "."
    )
    return "\n".join(out)


PAGES: dict[str, Callable[[], str]] = {
    "configuration": configuration,
    "metrics": metrics,
    "commands": commands,
}
