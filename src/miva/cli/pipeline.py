"""`miva pipeline local|compile|run`: the DAG on this machine (kfp.local), compiled to a
pipeline YAML, or submitted to Kubeflow Pipelines."""

from __future__ import annotations

import argparse

from miva.cli.base import Command, shorthand
from miva.config import MivaConfig


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["local", "compile", "run"])
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
    if args.action == "local":
        from miva.pipeline.local import run_local

        summary = run_local(cfg, args.config, args.overrides, pipeline_root=args.pipeline_root)
        print()
        print(summary.render())
        return 0
    from miva.pipeline.submit import compile_pipeline

    package = compile_pipeline(cfg, args.config, args.overrides, args.output)
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
    Command("pipeline", "run the DAG locally, compile it, or submit it to Kubeflow", _args, _run),
)
