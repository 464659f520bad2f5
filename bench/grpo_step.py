"""GRPO step time of the tiny preset's default workload (`make run`'s GRPO stage).

configs/tiny-cpu.yaml's GRPO settings on a dataset that config synthesizes, starting from
the model of its SFT stage (trained here on that data once, and kept beside it). Prints
each step's wall seconds (whole step, rollout, update) and CPU seconds of the process
(whole step, rollout) as JSON lines, then their medians.

The script imports whichever `miva` the interpreter has installed and never touches
`sys.path`, so the same file times two checkouts against each other in one session
(before/after a change), alternating runs on the same data and model:

    /work/main/.venv/bin/python bench/grpo_step.py --data /tmp/preset   # before
    .venv/bin/python bench/grpo_step.py --data /tmp/preset              # after
    .venv/bin/python bench/grpo_step.py --data /tmp/preset --set agent.kv_cache=false agent.vision_cache=false
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="dataset folder (synthesized when empty)")
    ap.add_argument("--steps", type=int, default=4, help="GRPO steps; the first is warm-up")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", nargs="*", default=[], help="config overrides (key=value)")
    a = ap.parse_args()

    import torch

    import miva
    from miva.agent.model import load_model
    from miva.config import load_config
    from miva.data.io import read_samples
    from miva.data.synth.build import run_synth
    from miva.rl.grpo import GRPOTrainer
    from miva.rl.sft import run_sft

    torch.set_num_threads(a.threads)
    overrides = ["grpo.checkpoint_every=1000000", f"grpo.steps={a.steps}", *a.set]
    cfg = load_config("tiny-cpu", overrides)
    data = Path(a.data)
    if not (data / "dataset.json").exists():
        run_synth(cfg.synthesize, data, progress=False)
    sft = data.parent / (data.name + "-sft")
    if not (sft / "config.json").exists():
        run_sft(load_config("tiny-cpu"), "tiny-random", str(data), str(sft), progress=False)
    samples = read_samples(data, "train")
    model, processor = load_model(str(sft))
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        trainer = GRPOTrainer(
            cfg,
            str(sft),
            str(data),
            out,
            progress=False,
            samples=samples,
            policy=(model, processor),
        )
        # CPU seconds of each step, and of its rollout part: on a shared machine the wall
        # clock mostly measures the neighbours
        cpu: dict[str, list[float]] = {"step": [], "rollout": []}
        real_log, real_collect = trainer.logger.log, trainer._collect
        last = [time.process_time()]

        def log(step, metrics):
            now = time.process_time()
            cpu["step"].append(now - last[0])
            last[0] = now
            return real_log(step, metrics)

        def collect(step):
            c0 = time.process_time()
            out = real_collect(step)
            cpu["rollout"].append(time.process_time() - c0)
            return out

        trainer.logger.log, trainer._collect = log, collect
        last[0] = time.process_time()
        res = trainer.run()
        total = time.perf_counter() - t0
    for row, c_step, c_roll in zip(res.history, cpu["step"], cpu["rollout"], strict=True):
        row["cpu/step_s"], row["cpu/rollout_s"] = c_step, c_roll
    keys = (
        "perf/step_time_s",
        "perf/rollout_time_s",
        "perf/update_time_s",
        "cpu/step_s",
        "cpu/rollout_s",
        "rollout/turns",
        "rollout/response_tokens",
    )
    for row in res.history:
        print(json.dumps({k: round(row[k], 3) for k in ("step", *keys) if k in row}))
    timed = res.history[1:]
    summary = {k: statistics.median(r[k] for r in timed) for k in keys if timed and k in timed[0]}
    summary.update(
        miva=str(Path(miva.__file__).parent),
        overrides=a.set,
        steps_timed=len(timed),
        total_s=round(total, 1),
        load_start=load,
        load_end=os.getloadavg(),
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
