"""`miva pipeline local|compile|run|sweep`: the DAG on this machine (kfp.local), compiled to
a pipeline YAML, or submitted to Kubeflow Pipelines; with `--sweep FILE` the sweep DAG."""

from __future__ import annotations

import argparse

from miva.cli.base import Command, shorthand
from miva.config import MivaConfig
from miva.errors import ConfigError


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        choices=["local", "compile", "run", "sweep"],
        help="local: the DAG through kfp.local; compile / run: YAML / submit to Kubeflow; "
        "sweep: the sweep DAG of --sweep through kfp.local",
    )
    p.add_argument(
        "--sweep",
        help="sweep file (YAML, see miva.pipeline.sweep): `sweep` runs it locally; with "
        "compile / run the sweep DAG is compiled / submitted instead of the main DAG",
    )
    p.add_argument(
        "--output", default="pipeline.yaml", help="compiled pipeline YAML (compile, run)"
    )
    p.add_argument(
        "--wait", action="store_true", help="wait for the cluster run and print status lines"
    )
    p.add_argument("--host", help="KFP API endpoint (default: $KFP_HOST, then pipeline.host)")
    shorthand(p, "--namespace", "pipeline.namespace", "KFP namespace of the run")
    shorthand(p, "--experiment", "pipeline.experiment", "KFP experiment of the run")
    p.add_argument("--run-name", help="KFP run name (default: run_name + UTC timestamp)")
    p.add_argument(
        "--pipeline-root", help="local run: artifact folder (default: <workdir>/pipeline)"
    )


def _run(args: argparse.Namespace, cfg: MivaConfig) -> int:
    # The config (preset + overrides) was validated by load_config before this runs, so a
    # bad key fails here, naming the key, before anything is compiled or submitted.
    sweep = None
    if args.sweep:
        from miva.pipeline.sweep import load_spec

        sweep = load_spec(args.sweep)
    elif args.action == "sweep":
        raise ConfigError("`miva pipeline sweep` needs --sweep FILE (a sweep YAML)")
    if args.action in ("local", "sweep"):
        if sweep is not None:
            from miva.pipeline.local import run_sweep_local

            summary = run_sweep_local(
                cfg, args.config, args.overrides, sweep, pipeline_root=args.pipeline_root
            )
        else:
            from miva.pipeline.local import run_local

            summary = run_local(cfg, args.config, args.overrides, pipeline_root=args.pipeline_root)
        print()
        print(summary.render())
        return 0
    from miva.pipeline.submit import compile_pipeline

    package = compile_pipeline(cfg, args.config, args.overrides, args.output, sweep=sweep)
    print(f"compiled {package}")
    if args.action == "compile":
        return 0
    from miva.pipeline.submit import make_client, resolve_host, submit, wait_for_run

    host = resolve_host(cfg, args.host)
    namespace = cfg.pipeline.namespace
    client = make_client(host, namespace)
    run_id = submit(
        cfg, package, host=host, namespace=namespace, run_name=args.run_name, client=client
    )
    print(f"submitted run {run_id} to {host} (namespace {namespace})")
    if args.wait:
        wait_for_run(client, run_id)
    return 0


COMMANDS = (
    Command(
        "pipeline",
        "run the DAG (or a sweep) locally, compile it, or submit it to Kubeflow",
        _args,
        _run,
    ),
)
