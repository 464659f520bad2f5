"""The six stage commands, named as the DAG names its stages: each calls its `miva.stages`
function and prints the result. Inputs and outputs are flags; every other flag is a
shorthand for a config key."""

from __future__ import annotations

import argparse

from miva.cli.base import Command, comma_list, int_range, shorthand
from miva.config import MivaConfig
from miva.stages.result import StageResult


def _no_tracking(p: argparse.ArgumentParser) -> None:
    shorthand(p, "--no-tracking", "registry.track_runs", "do not record an MLflow run", const=False)


def _show(result: StageResult) -> int:
    print(f"{result.stage}: {result.summary}")
    for line in result.details:
        print(line)
    return 0


# ----------------------------------------------------------------------------- synthesize


def _synthesize_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="dataset folder or s3:// URI (default: synthesize.output)")
    shorthand(p, "--n", "synthesize.n", "number of samples", type=int)
    shorthand(p, "--tasks", "synthesize.tasks", "comma-separated task families", type=comma_list)
    shorthand(
        p,
        "--images-per-sample",
        "synthesize.images_per_sample",
        "N or MIN,MAX images per sample",
        type=int_range,
    )
    shorthand(p, "--image-size", "synthesize.image_size", "image side in pixels", type=int)
    shorthand(p, "--workers", "synthesize.workers", "worker processes", type=int)
    shorthand(p, "--seed", "synthesize.seed", "generator seed", type=int)
    shorthand(p, "--detail", "synthesize.detail", "fine or coarse targets")
    shorthand(p, "--coco", "synthesize.coco_path", "COCO folder to build tasks from")
    _no_tracking(p)


def _synthesize(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva import stages

    result = stages.synthesize(cfg, args.out, progress=not args.quiet)
    print(f"wrote {result.output} (digest {result.value.digest})")
    return _show(result)


# ----------------------------------------------------------------------------- validate


def _validate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "dataset", nargs="?", help="dataset folder or s3:// URI (default: synthesize.output)"
    )
    p.add_argument("--out", help="output folder or s3:// URI (default: validate.output)")
    shorthand(
        p,
        "--max-quarantine-fraction",
        "validate.max_quarantine_fraction",
        "fail when more rows than this are quarantined",
        type=float,
    )
    shorthand(
        p, "--no-docs", "validate.data_docs", "skip the great-expectations HTML docs", const=False
    )
    _no_tracking(p)


def _validate(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva import stages
    from miva.validate import ValidationFailed, summary

    try:
        return _show(stages.validate(cfg, args.dataset, args.out, progress=not args.quiet))
    except ValidationFailed as failed:
        print(summary(failed.report))
        raise


# ----------------------------------------------------------------------------- sft / grpo


def _training_args(p: argparse.ArgumentParser, section: str, start: str) -> None:
    p.add_argument("--model", help=f"starting model (default: {start})")
    p.add_argument("--dataset", help="training dataset (default: <validate.output>/clean)")
    p.add_argument("--out", help=f"output model folder (default: {section}.output)")
    shorthand(p, "--steps", f"{section}.steps", "optimizer steps", type=int)
    _no_tracking(p)


def _sft_args(p: argparse.ArgumentParser) -> None:
    _training_args(p, "sft", "model.name_or_path")


def _sft(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva import stages

    return _show(stages.sft(cfg, args.dataset, args.out, args.model, progress=not args.quiet))


def _grpo_args(p: argparse.ArgumentParser) -> None:
    _training_args(p, "grpo", "sft.output when SFT ran, else model.name_or_path")
    shorthand(
        p, "--resume", "grpo.resume", "continue from the last checkpoint in --out", const=True
    )


def _grpo(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva import stages

    return _show(stages.grpo(cfg, args.dataset, args.out, args.model, progress=not args.quiet))


# ----------------------------------------------------------------------------- evaluate


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model to evaluate (default: grpo.output)")
    p.add_argument(
        "--dataset",
        help="dataset folder or s3:// URI (default: <validate.output>/clean, none with --bench)",
    )
    p.add_argument("--bench", help="benchmark adapter name (see `miva bench list`)")
    p.add_argument("--path", help="the benchmark's folder in its native layout")
    p.add_argument("--baseline", help="second model on the same items (default: evaluate.baseline)")
    p.add_argument("--out", help="output folder (default: evaluate.output)")
    shorthand(p, "--splits", "evaluate.splits", "comma-separated dataset splits", type=comma_list)
    shorthand(
        p, "--max-items", "evaluate.max_items", "cap on items per split or benchmark", type=int
    )
    shorthand(
        p,
        "--pass-k",
        "evaluate.pass_k",
        "sample K answers per item and report pass@K",
        type=int,
        metavar="K",
        also=[("evaluate.greedy", lambda k: k == 1)],
    )
    _no_tracking(p)


def _evaluate(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva import stages
    from miva.errors import ConfigError
    from miva.stages.locations import training_dataset

    benches = None
    if args.bench:
        configured = cfg.evaluate.benchmarks
        if not args.path and args.bench not in configured:
            raise ConfigError(f"--bench {args.bench} needs --path FOLDER (or evaluate.benchmarks)")
        benches = {args.bench: args.path or configured[args.bench]}
    elif args.path:
        raise ConfigError("--path needs --bench NAME (see `miva bench list`)")
    dataset = args.dataset or (None if args.bench else training_dataset(cfg))
    baseline = args.baseline or cfg.evaluate.baseline
    return _show(stages.evaluate(cfg, args.model, args.out, dataset, benches, baseline))


# ----------------------------------------------------------------------------- register


def _register_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", help="save_pretrained model folder or s3:// URI (default: grpo.output)"
    )
    p.add_argument(
        "--metrics",
        help="metrics.json of `miva evaluate` (default: <evaluate.output>/metrics.json)",
    )
    p.add_argument("--dataset", help="training dataset (for lineage)")
    p.add_argument("--report", help="HTML report (file or folder) to attach to the run")
    p.add_argument(
        "--eval-digest",
        help="digest of the eval set (default: eval/<set>/digest in metrics.json)",
    )


def _register(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva import stages

    result = stages.register(
        cfg, args.model, args.metrics, args.dataset, args.report, args.eval_digest
    )
    print("\n".join(result.details))
    print(result.summary)
    return 0


COMMANDS = (
    Command("synthesize", "synthesize a multi-image QA dataset", _synthesize_args, _synthesize),
    Command("validate", "validate a dataset; quarantine bad rows", _validate_args, _validate),
    Command("sft", "supervised cold start on gold trajectories", _sft_args, _sft),
    Command("grpo", "GRPO training with multi-turn tool use", _grpo_args, _grpo),
    Command(
        "evaluate", "evaluate a model on dataset splits and benchmarks", _evaluate_args, _evaluate
    ),
    Command(
        "register",
        "register a model version and apply the promotion policy",
        _register_args,
        _register,
    ),
)
