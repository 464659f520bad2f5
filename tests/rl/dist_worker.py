"""The training side of the data-parallel tests, run by `torchrun` (or in the test process for
the one-process baseline). Not a test module: `test_distributed.py` launches it.

    torchrun --standalone --nproc_per_node 2 tests/rl/dist_worker.py JOB.json

JOB.json names the dataset, a file of recorded trajectories and the runs to make (config
overrides, output folder, replay or real hf rollouts, resume, a step at which one rank
dies). Each rank writes what it saw to ``<out>/seen-rank<r>.pt``: the prompts it rolled out
per step, a digest of its parameters after every step, its gradients at the first update
(after DDP's all-reduce) and the logged metrics.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import torch

torch.set_num_threads(1)

BASE = [
    "agent.tools=[]",
    "agent.max_turns=1",
    "agent.max_new_tokens=6",
    "grpo.group_size=4",
    "grpo.micro_batch_size=4",
    "grpo.lr=1e-3",
    "grpo.checkpoint_every=1",
    "reward.weights={accuracy: 1.0, even_tokens: 1.0}",
    "grpo.status_policy={ok: train, truncated: train, malformed: penalize, "
    "tool_error: mask, max_turns: mask, image_budget: mask}",
]


def even_token_share(trajectories, samples, cfg):
    """A toy reward every group has variance in: the share of sampled tokens with an even id."""
    out = []
    for t in trajectories:
        ids = [i for i, m in zip(t.token_ids, t.loss_mask, strict=True) if m]
        out.append(sum(1 for i in ids if i % 2 == 0) / max(len(ids), 1))
    return out


class ReplayAgent:
    """Serves trajectories recorded once with the real hf engine, by sample id, so runs with
    different numbers of ranks train on exactly the same trajectories."""

    def __init__(self, recorded: dict[str, list[Any]]):
        self.recorded = recorded
        self.asked: list[str] = []

    def rollout(self, samples, n_per_sample=1, seed=0, progress=False):
        out = []
        for s in samples:
            self.asked.append(s.id)
            out.extend(self.recorded[s.id][:n_per_sample])
        return out


class Recorder:
    """The prompts a rank rolled out, step by step (wraps the trainer's agent)."""

    def __init__(self, agent):
        self.agent, self.asked = agent, []

    def rollout(self, samples, n_per_sample=1, seed=0, progress=False):
        self.asked.extend(s.id for s in samples)
        return self.agent.rollout(samples, n_per_sample, seed=seed, progress=progress)


def even_tokens_on_half(trajectories, samples, cfg):
    """The toy reward on half of the prompts (by id) and 0 on the others: about half the groups
    have no reward variance, so dynamic sampling refills them."""
    shares = even_token_share(trajectories, samples, cfg)
    return [r if int(s.id[-1], 16) % 2 else 0.0 for r, s in zip(shares, samples, strict=True)]


def record(dataset: str, group_size: int, path: str) -> None:
    """Roll out every training prompt once with the real hf engine and pickle the trajectories."""
    from miva.agent.engines import make_engine
    from miva.agent.model import load_model
    from miva.agent.rollout import Agent
    from miva.agent.tools import build_tools
    from miva.config import load_config
    from miva.rl.setup import load_training_samples

    cfg = load_config("tiny-cpu", BASE)
    model, processor = load_model("tiny-random")
    engine = make_engine("hf", model, processor, cfg.agent)
    agent = Agent(processor, cfg.agent, build_tools(cfg.agent), engine)
    samples = load_training_samples(dataset)
    trajs = agent.rollout(samples, group_size, seed=123)
    recorded = {s.id: trajs[i * group_size : (i + 1) * group_size] for i, s in enumerate(samples)}
    with open(path, "wb") as fh:
        pickle.dump(recorded, fh)


def param_digest(model) -> str:
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def register_toy_reward() -> None:
    from miva.rl.rewards.registry import REWARDS

    REWARDS["even_tokens"] = even_token_share
    REWARDS["even_tokens_on_half"] = even_tokens_on_half


def run(job: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """One training run as `spec` describes; returns what this rank saw."""
    from miva.config import load_config
    from miva.rl import grpo
    from miva.rl.distributed import world_from_env

    world = world_from_env()
    cfg = load_config("tiny-cpu", BASE + list(spec["overrides"]))
    seen: dict[str, Any] = {"steps": {}, "digests": {}}
    recorder: Recorder | None = None

    def after_step(step, model):
        seen["digests"][step] = param_digest(model)
        if recorder is not None:
            seen["steps"][step] = list(recorder.asked)
            recorder.asked.clear()
        return None

    trainer = grpo.GRPOTrainer(
        cfg,
        "tiny-random",
        job["dataset"],
        spec["out"],
        resume=spec.get("resume", False),
        progress=False,
        log_fn=after_step,
    )
    if spec.get("replay"):
        with open(job["replay"], "rb") as fh:
            trainer.agent = ReplayAgent(pickle.load(fh))
    recorder = Recorder(trainer.agent)
    trainer.agent = recorder

    real_step = trainer.backend.step
    die_at = spec.get("die_at_step")
    state = {"updates": 0}

    def step_and_record():
        state["updates"] += 1
        if state["updates"] == 1:
            seen["grads"] = {
                n: p.grad.detach().cpu().clone()
                for n, p in trainer.backend.module.named_parameters()
                if p.grad is not None
            }
        return real_step()

    trainer.backend.step = step_and_record
    if die_at is not None:
        real_update = trainer._update
        first = trainer.start_step + 1

        def dying_update(batch, adv):
            # the run is killed in the middle of step `die_at` (after its rollout): one rank
            # disappears, the other is left waiting in a collective until torchrun stops it
            if first + state["updates"] == die_at and world.rank == world.size - 1:
                sys.stdout.flush()
                os._exit(17)
            return real_update(batch, adv)

        trainer._update = dying_update
    result = trainer.run()
    seen["history"] = result.history
    return seen


def main(job_path: str) -> None:
    from miva.rl.distributed import world_from_env

    job = json.loads(Path(job_path).read_text())
    register_toy_reward()
    rank = world_from_env().rank
    for spec in job["runs"]:
        seen = run(job, spec)
        Path(spec["out"]).mkdir(parents=True, exist_ok=True)
        torch.save(seen, Path(spec["out"]) / f"seen-rank{rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1])
