"""Wall time of the whole local pipeline (`miva pipeline local`) and of each stage.

A stage's time is from the previous task's end to its own end (the DAG runs one task at a
time locally), so it includes starting the subprocess and importing `miva`, which is what
`make run` costs. Prints a markdown table and the command that produced it.

    .venv/bin/python bench/pipeline_local.py                       # the tiny preset (make run)
    .venv/bin/python bench/pipeline_local.py --set synthesize.n=40 ...    # any overrides
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", default="tiny-cpu")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    from miva.config import load_config
    from miva.pipeline.local import run_local

    with tempfile.TemporaryDirectory(prefix="miva-bench-") as tmp:
        os.chdir(tmp)  # .miva/ (MLflow, artifacts) in a scratch folder
        cfg = load_config(args.config, args.overrides)
        start = time.time()
        summary = run_local(cfg, args.config, args.overrides, pipeline_root=Path(tmp) / "runs")
        total = time.time() - start
        ends = sorted(
            (p.stat().st_mtime, p.parent.name)
            for p in summary.run_dir.glob("*/executor_output.json")
        )
        print("\n| stage | seconds |\n|---|---:|")
        previous = start
        for end, task in ends:
            print(f"| {task} | {end - previous:.1f} |")
            previous = end
        print(f"| **total** (incl. MLflow set-up) | **{total:.1f}** |")
    cmd = " ".join(["python bench/pipeline_local.py", "-c", args.config])
    cmd += "".join(f" --set {o}" for o in args.overrides)
    print(f"\n`{cmd}` on {os.cpu_count()} CPU cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
