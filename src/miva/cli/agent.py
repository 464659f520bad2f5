"""`miva agent`: run the agent on a few samples and show every trajectory."""

from __future__ import annotations

import argparse

from miva.cli.base import Command
from miva.config import MivaConfig


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model (default: model.name_or_path)")
    p.add_argument("--dataset", help="dataset folder or s3:// URI (default: synthesize.output)")
    p.add_argument("--split", default="test")
    p.add_argument("--n", type=int, default=4, help="samples to run")
    p.add_argument("--out", default=".miva/agent", help="folder for the images the model saw")
    p.add_argument(
        "--html", action="store_true", help="also write an HTML page with the images inline"
    )
    p.add_argument(
        "--policy",
        choices=["model", "gold"],
        default="model",
        help="sample from the model, or replay each sample's gold trajectory (zoom on the "
        "evidence, gold answer)",
    )
    p.add_argument("--samples", type=int, default=1, help="trajectories per sample")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")


def _run(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva.eval.show import run_show

    result = run_show(
        cfg,
        model=args.model or cfg.model.name_or_path,
        dataset=args.dataset or cfg.synthesize.output,
        split=args.split,
        n=args.n,
        out=args.out,
        html=args.html,
        policy=args.policy,
        n_per_sample=args.samples,
        seed=args.seed,
    )
    print(result.text)
    print(f"\nimages saved under {args.out}/ ({len(result.image_dirs)} trajectories)")
    if result.html_path:
        print(f"HTML view: {result.html_path}")
    return 0


COMMANDS = (Command("agent", "run the agent on a few samples and show trajectories", _args, _run),)
