"""`miva <stage> ...`: one subcommand per pipeline stage, each a thin shell over the library.

Every subcommand takes `-c/--config PRESET` (a name in configs/ or a YAML path) and any
number of `--set key.path=value` overrides. Errors meant for users (`MivaError`) print
one readable message and exit non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from miva import __version__
from miva.config import DEFAULT_PRESET, MivaConfig, describe, load_config
from miva.errors import MivaError

Handler = Callable[[argparse.Namespace, MivaConfig], int | None]


# ----------------------------------------------------------------------------- config


def _add_config_show(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["show"], nargs="?", default="show")
    p.add_argument("--json", action="store_true", help="print the resolved config as JSON")


def _run_config_show(args: argparse.Namespace, cfg: MivaConfig) -> int:
    if args.json:
        import json

        print(json.dumps(cfg.to_dict(), indent=2))
    else:
        print("\n".join(describe(values=cfg)))
    return 0


# ----------------------------------------------------------------------------- synth


def _add_synth(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="dataset folder or s3:// URI (default: data.output)")
    p.add_argument("--n", type=int, help="number of samples (data.n)")
    p.add_argument("--tasks", help="comma-separated task families (data.tasks)")
    p.add_argument("--images-per-sample", help="MIN,MAX images per sample (data.images_per_sample)")
    p.add_argument("--image-size", type=int, help="image side in pixels (data.image_size)")
    p.add_argument("--workers", type=int, help="worker processes (data.workers)")
    p.add_argument("--seed", type=int, help="generator seed (data.seed)")
    p.add_argument(
        "--detail",
        choices=["fine", "coarse"],
        help="fine: small targets among near misses; coarse: one large object per image (data.detail)",
    )
    p.add_argument(
        "--coco", help="COCO folder to build tasks from real annotations (data.coco_path)"
    )


def _synth_data_config(args: argparse.Namespace, cfg: MivaConfig):
    """cfg.data with the command-line options applied (validated like the preset)."""
    from pydantic import ValidationError

    from miva.config import DataConfig
    from miva.errors import ConfigError

    data = cfg.data.model_dump()
    if args.n is not None:
        data["n"] = args.n
    if args.tasks:
        data["tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if args.images_per_sample:
        parts = [p.strip() for p in args.images_per_sample.split(",")]
        try:
            lo, hi = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (None, None)
        except ValueError:
            lo = hi = None
        if lo is None:
            raise ConfigError(
                f"--images-per-sample must be N or MIN,MAX, got {args.images_per_sample!r}"
            )
        data["images_per_sample"] = (lo, hi)
    for key in ("image_size", "workers", "seed", "detail"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.coco:
        data["coco_path"] = args.coco
    if args.out:
        data["output"] = args.out
    try:
        return DataConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"  data.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid synth options:\n" + "\n".join(lines)) from None


def _run_synth(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva.data.synth.generate import run_synth

    data = _synth_data_config(args, cfg)
    info = run_synth(data, data.output)
    print(f"wrote {info.total} samples to {data.output} (digest {info.digest})")
    for split, counts in info.counts.items():
        print(f"  {split}: " + ", ".join(f"{t}={c}" for t, c in counts.items()))
    rejects = info.generator.get("verifier_rejects", {})
    if rejects:
        print("  rejected while generating: " + ", ".join(f"{k}={v}" for k, v in rejects.items()))
    for split, problems in info.generator.get("balance_violations", {}).items():
        print(f"  warning: {split} split not balanced: {'; '.join(problems)}")
    return 0


# ----------------------------------------------------------------------------- validate


def _add_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", nargs="?", help="dataset folder or s3:// URI (default: data.output)")
    p.add_argument("--out", help="output folder or s3:// URI (default: validate.output)")
    p.add_argument(
        "--max-quarantine-fraction",
        type=float,
        help="fail when more rows than this are quarantined (validate.max_quarantine_fraction)",
    )
    p.add_argument("--no-docs", action="store_true", help="skip the great-expectations HTML docs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _run_validate(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva.errors import ConfigError
    from miva.validate import ValidationFailed, summary, validate_dataset

    vcfg = cfg.validate_
    if args.max_quarantine_fraction is not None:
        if not 0 <= args.max_quarantine_fraction <= 1:
            raise ConfigError("--max-quarantine-fraction must be between 0 and 1")
        vcfg = vcfg.model_copy(update={"max_quarantine_fraction": args.max_quarantine_fraction})
    out = args.out or vcfg.output
    report = validate_dataset(
        args.dataset or cfg.data.output,
        out,
        vcfg,
        progress=not args.quiet,
        data_docs=not args.no_docs,
    )
    print(summary(report))
    if not report.passed:
        raise ValidationFailed(
            f"the dataset failed the gate ({'; '.join(report.verdict_reasons)}); "
            f"see {out}/report.json and {out}/quarantine/"
        )
    return 0


# ----------------------------------------------------------------------------- agent


def _add_agent(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model (default: model.name_or_path)")
    p.add_argument("--dataset", help="dataset folder or s3:// URI")
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
        help="sample from the model, or replay each sample's gold trajectory (zoom on the evidence, gold answer)",
    )
    p.add_argument("--samples", type=int, default=1, help="trajectories per sample")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")


def _run_agent(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva.agent.show import run_show

    if args.model:
        cfg.model.name_or_path = args.model
    res = run_show(
        cfg,
        dataset=args.dataset or cfg.data.output,
        split=args.split,
        n=args.n,
        out=args.out,
        html=args.html,
        policy=args.policy,
        n_per_sample=args.samples,
        seed=args.seed,
    )
    print(res.text)
    print(f"\nimages saved under {args.out}/ ({len(res.image_dirs)} trajectories)")
    if res.html_path:
        print(f"HTML view: {res.html_path}")
    return 0


# ----------------------------------------------------------------------------- sft / train


def _add_sft(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="starting model (default: model.name_or_path)")
    p.add_argument("--dataset", help="training dataset (default: validated clean dataset)")
    p.add_argument("--out", help="output model folder (default: sft.output)")
    p.add_argument("--steps", type=int, help="SFT steps (sft.steps)")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")


def _train_dataset(args: argparse.Namespace, cfg: MivaConfig) -> str:
    return args.dataset or str(Path(cfg.validate_cfg.output) / "clean")


def _tracked(args: argparse.Namespace, cfg: MivaConfig, stage: str, dataset: str):
    """The registry's MLflow stage run (metrics, curves, dataset lineage), or nothing."""
    import contextlib

    from miva.rl.distributed import world_from_env

    if getattr(args, "no_tracking", False) or not world_from_env().is_main:
        return contextlib.nullcontext()  # under torchrun only rank 0 talks to MLflow

    @contextlib.contextmanager
    def run():
        from miva.registry.tracking import log_dataset, stage_run

        with stage_run(cfg, stage) as active:
            try:
                log_dataset(dataset, context="train")
            except MivaError as exc:
                print(f"miva {stage}: warning: dataset lineage not logged ({exc})", file=sys.stderr)
            yield active

    return run()


def _run_sft(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva.rl.sft import run_sft

    if args.steps is not None:
        cfg.sft.steps = args.steps
    dataset = _train_dataset(args, cfg)
    out = args.out or cfg.sft.output
    with _tracked(args, cfg, "sft", dataset):
        res = run_sft(cfg, args.model or cfg.model.name_or_path, dataset, out)
    print(
        f"sft: {res.steps} steps on {res.gold} gold trajectories in {res.seconds:.0f} s, "
        f"final loss {res.final_loss:.4f}; model saved to {res.output}"
    )
    return 0


def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", help="starting model (default: sft.output when SFT ran, else model.name_or_path)"
    )
    p.add_argument("--dataset", help="training dataset (default: validated clean dataset)")
    p.add_argument("--out", help="output model folder (default: train.output)")
    p.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in --out"
    )
    p.add_argument("--steps", type=int, help="GRPO steps (train.steps)")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")


def _run_train(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva.rl.grpo import train

    if args.steps is not None:
        cfg.train.steps = args.steps
    model = args.model
    if model is None:
        sft_out = cfg.sft.output
        ran = sft_out.startswith("s3://") or (Path(sft_out) / "config.json").exists()
        model = sft_out if cfg.sft.enabled and ran else cfg.model.name_or_path
    dataset = _train_dataset(args, cfg)
    out = args.out or cfg.train.output
    with _tracked(args, cfg, "grpo", dataset):
        res = train(cfg, model, dataset, out, resume=args.resume or cfg.train.resume)
    last = res.history[-1] if res.history else {}
    print(
        f"grpo: {res.steps} steps from {model}; last reward {last.get('train/reward_mean', float('nan')):.3f}, "
        f"accuracy {last.get('train/accuracy', float('nan')):.3f}, skipped {res.skipped_steps}; "
        f"model saved to {res.output}" + (f"; curves {res.curve}" if res.curve else "")
    )
    return 0


def _add_pretrain(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="output model folder with its card (default: pretrain.output)")
    p.add_argument("--steps", type=int, help="optimizer steps (pretrain.steps)")
    p.add_argument("--minutes", type=float, help="training time budget (pretrain.max_minutes)")


def _run_pretrain(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva.rl.pretrain import pretrain

    if args.steps is not None:
        cfg.pretrain.steps = args.steps
    if args.minutes is not None:
        cfg.pretrain.max_minutes = args.minutes
    res = pretrain(cfg, args.out)
    print(
        f"pretrain: {res.steps} steps in {res.minutes:.1f} min, final loss {res.final_loss:.4f}; "
        f"held-out description accuracy {res.scores['description_accuracy']:.3f} "
        f"(colour {res.scores['colour']:.3f}, shape {res.scores['shape']:.3f}, position "
        f"{res.scores['position']:.3f}, count {res.scores['count']:.3f}); model and card in {res.output}"
    )
    return 0


# ----------------------------------------------------------------------------- eval / bench


def _add_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model to evaluate")
    p.add_argument("--dataset", help="dataset folder or s3:// URI")
    p.add_argument("--bench", help="benchmark adapter name (see `miva bench list`)")
    p.add_argument("--path", help="benchmark folder in its native layout")
    p.add_argument("--baseline", help="second model evaluated on the same items")
    p.add_argument("--out", help="output folder (default: eval.output)")
    p.add_argument("--splits", help="comma-separated dataset splits (eval.splits)")
    p.add_argument("--max-items", type=int, help="cap on items per split or benchmark")
    p.add_argument(
        "--pass-k", type=int, help="sample K answers per item and report pass@K (eval.pass_k)"
    )


def _run_eval(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva.errors import ConfigError
    from miva.eval.runner import run_eval

    ecfg = cfg.eval
    if args.splits:
        ecfg.splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    if args.max_items is not None:
        ecfg.max_items = args.max_items
    if args.pass_k:
        ecfg.greedy, ecfg.pass_k = args.pass_k == 1, args.pass_k
    benches = dict(ecfg.benchmarks)
    if args.bench:
        if not args.path and args.bench not in benches:
            raise ConfigError(f"--bench {args.bench} needs --path FOLDER (or eval.benchmarks)")
        benches = {args.bench: args.path or benches[args.bench]}
    elif args.path:
        raise ConfigError("--path needs --bench NAME (see `miva bench list`)")
    model = args.model or cfg.model.name_or_path
    out = args.out or ecfg.output
    result, paths = run_eval(
        cfg,
        model,
        out,
        dataset=args.dataset,
        benches=benches,
        baseline=args.baseline or ecfg.baseline,
    )
    for name in sorted(result.metrics):
        if "/overall/" in name and name.rsplit("/", 1)[-1] in (
            "accuracy",
            "acc_iou50",
            "ap50",
            "f1",
            "em",
            "invalid_rate",
        ):
            print(f"{name} = {result.metrics[name]:.4f}")
    for name, digest in result.digests.items():
        print(f"{name} = {digest}")
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _add_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list"], help="list the benchmark adapters")


def _run_bench(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva.data.benchmarks import BENCHMARKS

    for cls in BENCHMARKS.values():
        bench = cls()
        tools = f"\n  tools: {', '.join(bench.tools)}" if bench.tools else ""
        print(bench.describe() + tools + "\n")
    return 0


# ----------------------------------------------------------------------------- registry


def _add_register(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", help="save_pretrained model folder or s3:// URI (default: train.output)"
    )
    p.add_argument(
        "--metrics", help="metrics.json from `miva eval` (default: <eval.output>/metrics.json)"
    )
    p.add_argument("--dataset", help="training dataset (for lineage)")
    p.add_argument(
        "--eval-digest",
        help="digest of the eval set (default: eval/<set>/digest in metrics.json, or its eval_digest)",
    )
    p.add_argument("--report", help="HTML report (file or folder) to attach to the run")


def _run_register(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva.registry.registry import load_metrics, register_model

    model = args.model or cfg.train.output
    metrics_path = args.metrics or f"{cfg.eval.output.rstrip('/')}/metrics.json"
    metrics, digest = load_metrics(metrics_path, cfg.registry.primary_metric, args.eval_digest)
    result = register_model(
        cfg, model, metrics, eval_digest=digest, dataset=args.dataset, report=args.report
    )
    print(result.summary)
    print(
        f"registered {result.name} v{result.version}: {result.decision.outcome}; "
        f"champion is v{result.champion}"
    )
    return 0


def _add_registry(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["show", "promote", "rollback", "deploy"])
    p.add_argument(
        "--version",
        help="model version (promote: required; rollback: target, default previous; "
        "deploy: default the champion)",
    )
    _add_registry_deploy(p)


def _run_registry(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva.registry import registry

    if args.action == "deploy":
        return _run_registry_deploy(args, cfg)
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


def _add_registry_deploy(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--apply", action="store_true", help="deploy: kubectl apply the manifest (deploy.apply)"
    )
    p.add_argument("--output", help="deploy: manifest path (default: registry.deploy.output)")


def _run_registry_deploy(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva.registry.deploy import deploy

    if args.output:
        cfg.registry.deploy.output = args.output
    path = deploy(cfg, args.version, apply=args.apply or None)
    print(Path(path).read_text() if Path(path).is_file() else "")
    print(f"wrote {path}" + (" and applied it" if args.apply or cfg.registry.deploy.apply else ""))
    return 0


# ----------------------------------------------------------------------------- serve


def _add_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model", help="model folder, s3:// URI, models:/NAME@ALIAS or models:/NAME/VERSION"
    )
    p.add_argument("--host", help="address to listen on (serve.host)")
    p.add_argument("--port", type=int, help="port (serve.port)")
    p.add_argument("--name", help="model name clients send (serve.model_name)")


def _run_serve(args: argparse.Namespace, cfg: MivaConfig) -> int:
    from miva import serve

    for key, value in (("host", args.host), ("port", args.port), ("model_name", args.name)):
        if value is not None:
            setattr(cfg.serve, key, value)
    serve.run(cfg, args.model)
    return 0


# ----------------------------------------------------------------------------- pipeline


def _add_pipeline(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["local", "compile", "run"])
    p.add_argument(
        "--output", default="pipeline.yaml", help="compiled pipeline YAML (compile, run)"
    )
    p.add_argument(
        "--wait", action="store_true", help="wait for the cluster run and print status lines"
    )
    p.add_argument("--host", help="KFP API endpoint (default: $KFP_HOST, then pipeline.host)")
    p.add_argument("--namespace", help="KFP namespace (default: pipeline.namespace)")
    p.add_argument("--experiment", help="KFP experiment (default: pipeline.experiment)")
    p.add_argument("--run-name", help="KFP run name (default: run_name + UTC timestamp)")
    p.add_argument(
        "--pipeline-root", help="local run: artifact folder (default: <workdir>/pipeline)"
    )


def _run_pipeline(args: argparse.Namespace, cfg: MivaConfig) -> int:
    # The config (preset + overrides) was validated by load_config before this runs, so a
    # bad key fails here, naming the key, before anything is compiled or submitted.
    if args.action == "local":
        from miva.pipeline.local import run_local

        summary = run_local(cfg, args.config, args.overrides, pipeline_root=args.pipeline_root)
        print(summary.render())
        return 0
    from miva.pipeline.submit import compile_pipeline

    package = compile_pipeline(cfg, args.config, args.overrides, args.output)
    print(f"compiled {package}")
    if args.action == "compile":
        return 0
    from miva.pipeline.submit import make_client, resolve_host, submit, wait_for_run

    host = resolve_host(cfg, args.host)
    namespace = args.namespace or cfg.pipeline.namespace
    client = make_client(host, namespace)
    run_id = submit(
        cfg,
        package,
        host=host,
        namespace=namespace,
        experiment=args.experiment,
        run_name=args.run_name,
        client=client,
    )
    print(f"submitted run {run_id} to {host} (namespace {namespace})")
    if args.wait:
        wait_for_run(client, run_id)
    return 0


# ----------------------------------------------------------------------------- sandbox


def _add_sandbox(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["serve"], help="serve: run the python sandbox service")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (a pod: 0.0.0.0)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on")
    p.add_argument("--max-concurrent", type=int, default=2, help="calls run at the same time")
    p.add_argument(
        "--allow-weak-isolation",
        action="store_true",
        help="run in the audit-hook mode where namespaces are unavailable (the pod is then "
        "the boundary); same as agent.python.allow_weak_isolation",
    )
    p.add_argument(
        "--delegate-cgroup",
        action="store_true",
        help="cgroup v2: move this process into a leaf cgroup so that each call gets a "
        "cgroup of its own (a container whose cgroup is writable)",
    )


def _run_sandbox(args: argparse.Namespace, cfg: MivaConfig) -> int:
    import signal
    import threading

    from miva.agent.sandbox import cgroups
    from miva.agent.sandbox.limits import SandboxLimits
    from miva.agent.sandbox.service import serve

    if args.delegate_cgroup and not cgroups.delegate_v2():
        print("warning: could not delegate a cgroup v2 subtree; calls use rlimits only")
    py = cfg.agent.python
    server = serve(
        args.host,
        args.port,
        SandboxLimits.from_config(py),
        allow_weak=args.allow_weak_isolation or py.allow_weak_isolation,
        max_concurrent=args.max_concurrent,
    )
    print(
        f"miva sandbox: serving on {server.url} ({server.sandbox.isolation.describe()})", flush=True
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.close()
    return 0


# ----------------------------------------------------------------------------- main

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {
    "config": ("show the resolved config with descriptions", _add_config_show, _run_config_show),
    "synth": ("synthesize a multi-image QA dataset", _add_synth, _run_synth),
    "validate": ("validate a dataset; quarantine bad rows", _add_validate, _run_validate),
    "agent": ("run the agent on a few samples and show trajectories", _add_agent, _run_agent),
    "sft": ("supervised cold start on gold trajectories", _add_sft, _run_sft),
    "train": ("GRPO training with multi-turn tool use", _add_train, _run_train),
    "pretrain": (
        "caption-pretrain a model to see (the tiny-pretrained preset)",
        _add_pretrain,
        _run_pretrain,
    ),
    "eval": ("evaluate a model on dataset splits and benchmarks", _add_eval, _run_eval),
    "bench": ("public benchmark adapters", _add_bench, _run_bench),
    "register": (
        "register a model version and apply the promotion policy",
        _add_register,
        _run_register,
    ),
    "registry": (
        "show or move registry aliases by hand; deploy the champion on KServe",
        _add_registry,
        _run_registry,
    ),
    "serve": ("serve a model behind an OpenAI-compatible endpoint", _add_serve, _run_serve),
    "pipeline": (
        "run the DAG locally, compile it, or submit it to Kubeflow",
        _add_pipeline,
        _run_pipeline,
    ),
    "sandbox": ("serve the python tool's sandbox over HTTP", _add_sandbox, _run_sandbox),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="miva", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"miva {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_args, _) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
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
            help="override a config value, e.g. train.lr=1e-5",
        )
        add_args(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _, _, handler = COMMANDS[args.command]
    try:
        cfg = load_config(args.config, args.overrides)
        return int(handler(args, cfg) or 0)
    except MivaError as exc:
        print(f"miva {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"miva {args.command}: interrupted", file=sys.stderr)
        return 130


def workdir(cfg: MivaConfig) -> Path:
    path = Path(cfg.workdir)
    path.mkdir(parents=True, exist_ok=True)
    return path


if __name__ == "__main__":
    sys.exit(main())
