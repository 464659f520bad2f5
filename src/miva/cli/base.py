"""What a command group module provides (`Command`), and flags that write config keys.

One way to set a value: the preset and `--set key=value`. A command flag either names an
input or output (paths, model, dataset) or is a documented shorthand made with `shorthand`,
which appends `key=value` to the same override list `--set` fills; its help says which key
it writes, and `miva config show` explains the key.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from miva.config import MivaConfig

Run = Callable[[argparse.Namespace, MivaConfig], "int | None"]


@dataclass(frozen=True)
class Command:
    """`miva NAME`: `add_arguments` declares its flags, `run` does the work."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Run


class _WriteKeys(argparse.Action):
    """Appends `key=value` for each key (value from `convert`) to `namespace.overrides`."""

    def __init__(self, option_strings, dest, keys, convert, **kwargs) -> None:
        self.keys, self.convert = keys, convert
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        try:
            written = self.convert(self.const if self.nargs == 0 else values)
        except (TypeError, ValueError) as exc:
            parser.error(f"{option_string}: {exc}")
        overrides = list(getattr(namespace, "overrides", None) or [])
        for key, value in zip(self.keys, written, strict=True):
            overrides.append(f"{key}={json.dumps(value)}")
        namespace.overrides = overrides


def shorthand(
    parser: argparse.ArgumentParser,
    flag: str,
    key: str,
    help: str,
    *,
    type: Callable[[str], Any] = str,
    const: Any = None,
    metavar: str | None = None,
    also: Sequence[tuple[str, Callable[[Any], Any]]] = (),
) -> None:
    """`flag VALUE` writes config `key` (as `--set key=VALUE` would); with `const`, the flag
    takes no value and writes `const`. `also` = extra (key, value-from-flag-value) pairs."""
    keys = [key, *(k for k, _ in also)]

    def convert(raw: Any) -> list[Any]:
        value = raw if const is not None else type(raw)
        return [value, *(fn(value) for _, fn in also)]

    parser.add_argument(
        flag,
        action=_WriteKeys,
        dest=argparse.SUPPRESS,
        keys=keys,
        convert=convert,
        nargs=0 if const is not None else None,
        const=const,
        default=argparse.SUPPRESS,
        metavar=metavar,
        help=f"{help} (writes {', '.join(keys)})",
    )


def comma_list(text: str) -> list[str]:
    """`"a, b"` -> `["a", "b"]`."""
    return [part.strip() for part in text.split(",") if part.strip()]


def int_range(text: str) -> list[int]:
    """`"2,4"` -> `[2, 4]`; `"3"` -> `[3, 3]`."""
    parts = comma_list(text)
    if not 1 <= len(parts) <= 2:
        raise ValueError(f"expected N or MIN,MAX, got {text!r}")
    values = [int(p) for p in parts]
    return [values[0], values[-1]]
