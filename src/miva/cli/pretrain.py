"""`miva pretrain`: caption pretraining that teaches a model to see (the tiny-pretrained preset)."""

from __future__ import annotations

import argparse

from miva.cli.base import Command, shorthand
from miva.config import MivaConfig


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="output model folder with its card (default: pretrain.output)")
    shorthand(p, "--steps", "pretrain.steps", "optimizer steps", type=int)
    shorthand(p, "--minutes", "pretrain.max_minutes", "training time budget", type=float)


def _run(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva.rl.pretrain import pretrain

    res = pretrain(cfg, args.out, progress=not args.quiet)
    print(
        f"pretrain: {res.steps} steps in {res.minutes:.1f} min, final loss {res.final_loss:.4f}; "
        f"held-out description accuracy {res.scores['description_accuracy']:.3f} "
        f"(colour {res.scores['colour']:.3f}, shape {res.scores['shape']:.3f}, position "
        f"{res.scores['position']:.3f}, count {res.scores['count']:.3f}); model and card in {res.output}"
    )
    return 0


COMMANDS = (
    Command(
        "pretrain", "caption-pretrain a model to see (the tiny-pretrained preset)", _args, _run
    ),
)
