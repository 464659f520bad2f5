"""Data-parallel GRPO on this CPU: 1 rank x 2P prompts vs 2 ranks x P prompts per step.

    .venv/bin/python bench/distributed.py [--steps 5] [--prompts-per-rank 2] [--group 4]

Both runs train the tiny preset with the same global batch (2P prompts x G samples) under
`torchrun --standalone` with the gloo backend; each rank runs tests/rl/dist_worker.py (the
worker the data-parallel tests use). Two workloads per world size:
- `real`: hf rollouts as in training (each rank samples its own prompts with its own seeds):
  time per step (median), its rollout and update parts, trajectories rolled out per rank;
- `replay`: the same recorded trajectories for both world sizes (sampled once with the hf
  engine), so the two runs should end with the same weights: the max |w_1 - w_2| after N
  steps is the data-parallel error (float summation order). As a control, one rank also
  replays with micro-batches twice as large: the same math summed in another order.
On this 2-core machine two ranks share the two cores, so the time per step shows the cost
of the plumbing (process group, all-reduces, DDP) more than any speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "rl" / "dist_worker.py"
sys.path.insert(0, str(WORKER.parent))

import dist_worker  # noqa: E402  (tests/rl/dist_worker.py)


def launch(job: dict, folder: Path, nproc: int) -> float:
    path = folder / f"job-{nproc}.json"
    path.write_text(json.dumps(job))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={nproc}", str(WORKER), str(path)]
    t0 = time.perf_counter()
    done = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    if done.returncode:
        raise SystemExit(done.stdout[-3000:] + done.stderr[-5000:])
    return time.perf_counter() - t0


def main() -> None:
    import torch
    from safetensors.torch import load_file

    from miva.config import load_config
    from miva.data.synth.build import run_synth

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--prompts-per-rank", type=int, default=2)
    p.add_argument("--group", type=int, default=4)
    args = p.parse_args()
    dist_worker.register_toy_reward()
    folder = Path(tempfile.mkdtemp(prefix="miva-bench-dist-"))
    data_cfg = load_config(
        "tiny-cpu",
        ["synthesize.n=32", "synthesize.image_size=56", "synthesize.images_per_sample=[2, 2]"],
    ).synthesize
    run_synth(data_cfg, folder / "ds", progress=False)
    dist_worker.record(str(folder / "ds"), args.group, str(folder / "recorded.pkl"))
    global_prompts = 2 * args.prompts_per_rank
    common = [
        f"grpo.steps={args.steps}",
        f"grpo.prompts_per_step={global_prompts}",
        f"grpo.group_size={args.group}",
        f"grpo.micro_batch_size={args.group}",
        "grpo.dynamic_sampling=false",
        f"grpo.checkpoint_every={args.steps}",
    ]
    rows, weights = [], {}
    for nproc in (1, 2):
        runs = [
            {
                "out": str(folder / f"{kind}-{nproc}"),
                "replay": kind == "replay",
                "overrides": common,
            }
            for kind in ("real", "replay")
        ]
        if nproc == 1:
            bigger = [*common, f"grpo.micro_batch_size={2 * args.group}"]
            runs.append({"out": str(folder / "control"), "replay": True, "overrides": bigger})
        wall = launch(
            {"dataset": str(folder / "ds"), "replay": str(folder / "recorded.pkl"), "runs": runs},
            folder,
            nproc,
        )
        for spec in runs:
            kind = "replay" if spec["replay"] else "real"
            if spec["out"].endswith("control"):
                weights["control"] = load_file(str(Path(spec["out"]) / "model.safetensors"))
                continue
            seen = torch.load(Path(spec["out"]) / "seen-rank0.pt", weights_only=False)
            hist = seen["history"]
            rows.append(
                {
                    "ranks": nproc,
                    "workload": kind,
                    "prompts/rank": global_prompts // nproc,
                    "rollouts/rank/step": len(seen["steps"][1]) * args.group,
                    "step s": statistics.median(r["perf/step_time_s"] for r in hist[1:]),
                    "rollout s": statistics.median(r["perf/rollout_time_s"] for r in hist[1:]),
                    "update s": statistics.median(r["perf/update_time_s"] for r in hist[1:]),
                    "launch wall s": wall,
                }
            )
            weights[(nproc, kind)] = load_file(str(Path(spec["out"]) / "model.safetensors"))
    diff = {
        kind: max(
            float((weights[(1, kind)][k] - weights[(2, kind)][k]).abs().max())
            for k in weights[(1, kind)]
        )
        for kind in ("replay", "real")
    }
    control = max(
        float((weights[(1, "replay")][k] - weights["control"][k]).abs().max())
        for k in weights["control"]
    )
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print(
            "| "
            + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r.values())
            + " |"
        )
    print(
        f"\nmax |w(1 rank) - w(2 ranks)| after {args.steps} steps: replayed trajectories "
        f"{diff['replay']:.2e}; real rollouts (different samples) {diff['real']:.2e}; control "
        f"(1 rank, micro-batches of {2 * args.group} instead of {args.group}) {control:.2e}"
    )
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
