"""Wall time per GRPO step: MIVA's trainer vs TRL's GRPOTrainer, measured in one run.

Same tiny model (the `tiny-random` Qwen2.5-VL preset, text-only prompts so both trainers
see the same tokens), same prompts, group size, completion length and reward (the share
of even token ids in the completion), single turn, fp32 on CPU, one optimizer update per
step (mu = 1, no KL). The first step of each trainer is warm-up and not counted.

    .venv/bin/python bench/grpo_vs_trl.py [--steps 6] [--prompts 4] [--group 8] [--tokens 32]

Wall time on a shared machine is only as good as its neighbours are quiet, so the table
also gives the CPU time of the process per step (one torch thread by default).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def even_share(ids) -> float:
    ids = list(ids)
    return sum(1 for i in ids if i % 2 == 0) / max(len(ids), 1)


def miva_steps(cfg, model, processor, samples, steps: int) -> tuple[list[float], list[float]]:
    from miva.rl import grpo
    from miva.rl.rewards.registry import REWARDS

    def even_tokens(trajs, _samples, _cfg):
        return [
            even_share(i for i, m in zip(t.token_ids, t.loss_mask, strict=True) if m) for t in trajs
        ]

    REWARDS["even_tokens"] = even_tokens
    with tempfile.TemporaryDirectory() as out:
        trainer = grpo.GRPOTrainer(
            cfg, "bench", "bench", out, progress=False, samples=samples, policy=(model, processor)
        )
        cpu: list[float] = []
        real_log = trainer.logger.log
        last = [time.process_time()]

        def log(step, metrics):  # the end of a step: CPU seconds since the previous one
            now = time.process_time()
            cpu.append(now - last[0])
            last[0] = now
            return real_log(step, metrics)

        trainer.logger.log = log
        last[0] = time.process_time()
        res = trainer.run()
    return [row["perf/step_time_s"] for row in res.history], cpu


def trl_steps(model, tokenizer, prompts, args_ns, steps: int) -> tuple[list[float], list[float]]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    times: list[float] = []
    cpu: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t0)
            cpu.append(time.process_time() - self.c0)

    def reward(completions, completion_ids, **kw):
        return [even_share(ids) for ids in completion_ids]

    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out,
            max_steps=steps,
            learning_rate=1e-4,
            per_device_train_batch_size=args_ns.prompts * args_ns.group,
            gradient_accumulation_steps=1,
            num_generations=args_ns.group,
            max_completion_length=args_ns.tokens,
            beta=0.0,
            loss_type="dapo",
            temperature=1.0,
            report_to=[],
            use_cpu=True,
            bf16=False,
            logging_steps=10**6,
            save_strategy="no",
            disable_tqdm=True,
            seed=0,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=reward,
            args=config,
            train_dataset=Dataset.from_dict({"prompt": prompts * steps * args_ns.group}),
            processing_class=tokenizer,
            callbacks=[Clock()],
        )
        trainer.train()
    return times, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both trainers")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from miva.agent.model import load_model
    from miva.config import load_config
    from miva.data.schema import Sample

    cfg = load_config(
        "tiny-cpu",
        [
            "agent.tools=[]",
            "agent.max_turns=1",
            f"agent.max_new_tokens={a.tokens}",
            f"grpo.steps={a.steps}",
            f"grpo.prompts_per_step={a.prompts}",
            f"grpo.group_size={a.group}",
            f"grpo.micro_batch_size={a.prompts * a.group}",
            "grpo.lr=1e-4",
            "grpo.beta=0.0",
            "grpo.mu=1",
            "grpo.loss_agg=token-mean",
            "grpo.dynamic_sampling=false",
            "grpo.checkpoint_every=1000000",
            "reward.weights={even_tokens: 1.0}",
            "grpo.status_policy={ok: train, truncated: train, malformed: train, tool_error: train, "
            "max_turns: train, image_budget: train}",
        ],
    )
    base, processor = load_model("tiny-random")
    questions = [f"Question {i}: name a colour and a shape." for i in range(a.prompts)]
    samples = [
        Sample(task="bench", images=[], question=q, answer_type="text", answer="red")
        for q in questions
    ]
    # the exact prompt text MIVA's agent builds, given to TRL as its prompts
    from miva.agent.assembly import SequenceBuilder
    from miva.agent.format import system_prompt, user_prompt

    prompts = []
    for q in questions:
        b = SequenceBuilder(processor)
        b.start(system_prompt([], "text", processor.family), user_prompt(q, 0), [])
        prompts.append(processor.tokenizer.decode(b.token_ids))

    ap_threads = a.threads
    ours, ours_cpu = miva_steps(cfg, copy.deepcopy(base).train(), processor, samples, a.steps)
    theirs, theirs_cpu = trl_steps(
        copy.deepcopy(base).train(), processor.tokenizer, prompts, a, a.steps
    )
    med = statistics.median
    w_ours, w_theirs = med(ours[1:]), med(theirs[1:])
    c_ours, c_theirs = med(ours_cpu[1:]), med(theirs_cpu[1:])
    print(
        f"\n{a.prompts} prompts x {a.group} samples x {a.tokens} tokens, {a.steps} steps "
        f"(first is warm-up), torch threads {ap_threads}\n"
    )
    print("| trainer | median wall s/step | median CPU s/step | steps timed |")
    print("|---|---|---|---|")
    print(f"| MIVA GRPOTrainer | {w_ours:.3f} | {c_ours:.3f} | {len(ours) - 1} |")
    print(f"| TRL GRPOTrainer 1.16 | {w_theirs:.3f} | {c_theirs:.3f} | {len(theirs) - 1} |")
    print(f"\nratio MIVA / TRL: wall {w_ours / w_theirs:.2f}, CPU {c_ours / c_theirs:.2f}")
    print("\ncommand: .venv/bin/python bench/grpo_vs_trl.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
