"""Wall time per GRPO step: MIVA's trainer vs TRL's GRPOTrainer, measured in one run.

Same tiny model (the `tiny-random` Qwen2.5-VL preset), same prompts, group size,
completion length and reward (the share of even token ids in the completion), fp32 on
CPU, one optimizer update per step (mu = 1, no KL). The first step of each trainer is
warm-up and not counted. Rows (`--rows`):

- `text`: single turn, text-only prompts (MIVA's exact prompt text given to TRL);
- `images`: single turn, each prompt with 2-3 images of 448 px (shown at 112 px). TRL gets
  the same tokens through a Qwen2.5-VL processor built from the preset's tokenizer and PIL
  image processor with a chat template that renders MIVA's layout (checked token for
  token before timing);
- `multi-turn`: MIVA alone, with tools: turn 1 of every trajectory is teacher-forced to a
  zoom call through the model (a crop enters the context), turn 2 is sampled. TRL 1.16's
  tool loop needs a chat template that parses tool calls out of the completion and a model
  that writes them; a random tiny model writes none and TRL has no way to force one, so it
  cannot run this workload. MIVA is shown with its rollout caches on and off instead;
- `preset`: MIVA alone on the GRPO settings of configs/tiny-cpu.yaml (`make run`'s GRPO
  stage: 8 prompts x 8, up to 3 turns of 48 tokens, zoom and view) on a dataset that
  config synthesizes, from `--policy` (default: the preset's SFT stage trained on that data,
  as `make run` does, so the policy calls tools and groups have reward variance), caches
  off and on, interleaved `--repeats` times.

Each row prints the mean completion length of both trainers (sampled tokens per
trajectory) beside the times so the workloads are seen to match.

    .venv/bin/python bench/grpo_vs_trl.py [--steps 6] [--prompts 4] [--group 8] [--tokens 32]
        [--rows text images multi-turn preset]

Wall time on a shared machine is only as good as its neighbours are quiet, so the table
also gives the CPU time of the process per step (one torch thread by default) and the
load average.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

CHAT_TEMPLATE = (  # MIVA's layout (agent/assembly.py) as a chat template, for TRL's processor
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def even_share(ids) -> float:
    ids = list(ids)
    return sum(1 for i in ids if i % 2 == 0) / max(len(ids), 1)


def bench_config(a, tools: bool, turns: int):
    from miva.config import load_config

    return load_config(
        "tiny-cpu",
        [
            "agent.tools=[zoom, view]" if tools else "agent.tools=[]",
            f"agent.max_turns={turns}",
            f"agent.max_new_tokens={a.tokens}",
            "agent.prompt_style=full",
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


def miva_steps(cfg, model, processor, samples, wrap=None) -> dict:
    """Per step: wall and CPU seconds, mean sampled tokens per trajectory. `wrap(engine,
    processor) -> engine` replaces the agent's engine (teacher-forced turns)."""
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
        if wrap is not None:
            trainer.agent.engine = wrap(trainer.rollout_engine, processor)
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
    return {
        "wall": [row["perf/step_time_s"] for row in res.history],
        "cpu": cpu,
        "completion": [row["rollout/response_tokens"] for row in res.history],
        "turns": [row["rollout/turns"] for row in res.history],
        "rollout": [row["perf/rollout_time_s"] for row in res.history],
        "update": [row["perf/update_time_s"] for row in res.history],
    }


def image_processor_for_trl(processor):
    """A Qwen2.5-VL processor over the preset's tokenizer and PIL image processor (the
    video processor needs torchvision, which has no CPU build here: images only)."""
    from transformers import Qwen2_5_VLProcessor
    from transformers.processing_utils import ProcessorMixin

    class ImageOnlyProcessor(Qwen2_5_VLProcessor):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            self.image_token, self.video_token = "<|image_pad|>", "<|video_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    return ImageOnlyProcessor(processor.image_processor, processor.tokenizer, CHAT_TEMPLATE)


def trl_steps(model, processing_class, dataset: dict, a) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    out: dict[str, list[float]] = {"wall": [], "cpu": [], "completion": []}

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kw):
            out["wall"].append(time.perf_counter() - self.t0)
            out["cpu"].append(time.process_time() - self.c0)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                out["completion"].append(logs["completions/mean_length"])

    def reward(completions, completion_ids, **kw):
        return [even_share(ids) for ids in completion_ids]

    with tempfile.TemporaryDirectory() as tmp:
        config = GRPOConfig(
            output_dir=tmp,
            max_steps=a.steps,
            learning_rate=1e-4,
            per_device_train_batch_size=a.prompts * a.group,
            gradient_accumulation_steps=1,
            num_generations=a.group,
            max_completion_length=a.tokens,
            beta=0.0,
            loss_type="dapo",
            temperature=1.0,
            report_to=[],
            use_cpu=True,
            bf16=False,
            logging_steps=1,
            save_strategy="no",
            disable_tqdm=True,
            seed=0,
        )
        repeat = {k: v * a.steps * a.group for k, v in dataset.items()}
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=reward,
            args=config,
            train_dataset=Dataset.from_dict(repeat),
            processing_class=processing_class,
            callbacks=[Clock()],
        )
        trainer.train()
    return out


def text_row(a, base, processor) -> list[dict]:
    from miva.agent.assembly import SequenceBuilder
    from miva.agent.format import system_prompt, user_prompt
    from miva.data.schema import Sample

    cfg = bench_config(a, tools=False, turns=1)
    questions = [f"Question {i}: name a colour and a shape." for i in range(a.prompts)]
    samples = [
        Sample(task="bench", images=[], question=q, answer_type="text", answer="red")
        for q in questions
    ]
    prompts = []  # the exact prompt text MIVA's agent builds, given to TRL as its prompts
    for q in questions:
        b = SequenceBuilder(processor)
        b.start(system_prompt([], "text", processor.family), user_prompt(q, 0), [])
        prompts.append(processor.tokenizer.decode(b.token_ids))
        if processor.tokenizer.encode(prompts[-1], add_special_tokens=False) != b.token_ids:
            raise SystemExit(f"TRL's prompt tokens would differ from MIVA's for {q!r}")
    ours = miva_steps(cfg, copy.deepcopy(base).train(), processor, samples)
    theirs = trl_steps(copy.deepcopy(base).train(), processor.tokenizer, {"prompt": prompts}, a)
    return [
        {"row": "text", "trainer": "MIVA", **ours},
        {"row": "text", "trainer": "TRL 1.16", **theirs},
    ]


def image_row(a, base, processor) -> list[dict]:
    from rollout import samples as image_samples

    from miva.agent.assembly import SequenceBuilder, encode_image
    from miva.agent.format import ImageSlot, system_prompt, user_prompt

    cfg = bench_config(a, tools=False, turns=1)
    samples = image_samples(a.prompts, seed=1)
    trl_proc = image_processor_for_trl(processor)
    prompts, images = [], []
    for s in samples:
        pil = s.pil_images()
        system = system_prompt([], s.answer_type, processor.family, style=cfg.agent.prompt_style)
        user = user_prompt(s.question, len(pil))
        content = [
            {"type": "image"} if isinstance(part, ImageSlot) else {"type": "text", "text": part}
            for part in user.parts
            if part != ""
        ]
        system_block = [{"type": "text", "text": system}]  # one content shape for arrow
        prompts.append(
            [{"role": "system", "content": system_block}, {"role": "user", "content": content}]
        )
        images.append(pil)
        # the same tokens in both trainers, or the comparison is off
        b = SequenceBuilder(processor)
        b.start(system, user, [encode_image(img, processor) for img in pil])
        text = trl_proc.apply_chat_template(prompts[-1], tokenize=False, add_generation_prompt=True)
        ids = trl_proc(text=[text], images=[pil], return_tensors="pt")["input_ids"][0].tolist()
        if ids != b.token_ids:
            raise SystemExit(f"TRL's prompt tokens differ from MIVA's for {s.question!r}")
    ours = miva_steps(cfg, copy.deepcopy(base).train(), processor, samples)
    theirs = trl_steps(
        copy.deepcopy(base).train(), trl_proc, {"prompt": prompts, "images": images}, a
    )
    n_img = sum(len(x) for x in images) / len(images)
    return [
        {"row": f"images ({n_img:.1f}/prompt)", "trainer": "MIVA", **ours},
        {"row": f"images ({n_img:.1f}/prompt)", "trainer": "TRL 1.16", **theirs},
    ]


def forced_zoom(samples, group: int):
    """Turn 1 of every trajectory: the zoom call onto its sample's evidence, teacher-forced."""
    from rollout import zoom_call

    from miva.agent.engines.replay import ReplayTurns

    def wrap(engine, processor):
        calls = [zoom_call(s, processor) for s in samples]

        def script(key, turn):
            return calls[key // group] if turn == 0 else None

        return ReplayTurns(engine, processor.tokenizer, script)

    return wrap


def multi_turn_row(a, base, processor) -> list[dict]:
    from rollout import samples as image_samples

    rows = []
    samples = image_samples(a.prompts, seed=1)
    for cache in a.cache_order:
        cfg = bench_config(a, tools=True, turns=2)
        cfg.agent.kv_cache = cfg.agent.vision_cache = cache == "on"
        got = miva_steps(
            cfg, copy.deepcopy(base).train(), processor, samples, forced_zoom(samples, a.group)
        )
        rows.append({"row": "multi-turn, tools", "trainer": f"MIVA (caches {cache})", **got})
    return rows


def preset_row(a, processor) -> list[dict]:
    from miva.agent.model import load_model
    from miva.config import load_config
    from miva.data.io import read_samples
    from miva.data.synth.build import run_synth

    cfg = load_config("tiny-cpu", ["grpo.checkpoint_every=1000000", f"grpo.steps={a.steps}"])
    data = Path(a.data) if a.data else Path(tempfile.mkdtemp(prefix="miva-bench-data-"))
    if not (data / "dataset.json").exists():
        run_synth(cfg.synthesize, data, progress=False)
    samples = read_samples(data, "train")
    policy = a.policy
    if policy == "sft":  # what `make run` starts GRPO from: the preset's SFT stage on this data
        from miva.rl.sft import run_sft

        policy = str(data.parent / (data.name + "-sft"))
        if not (Path(policy) / "config.json").exists():
            run_sft(cfg, "tiny-random", str(data), policy, progress=False)
    base, proc = load_model(policy)
    runs: dict[str, list[dict]] = {}
    for _ in range(a.repeats):
        for cache in a.cache_order:
            c = cfg.model_copy(deep=True)
            c.agent.kv_cache = c.agent.vision_cache = cache == "on"
            runs.setdefault(cache, []).append(
                miva_steps(c, copy.deepcopy(base).train(), proc, samples)
            )
    rows = []
    for cache, got in runs.items():
        merged = {k: [x for g in got for x in g[k][1:]] for k in got[0]}
        for k in merged:  # each run's first step is its warm-up: keep one placeholder
            merged[k] = [got[0][k][0], *merged[k]]
        rows.append(
            {"row": f"tiny-cpu preset ({a.policy})", "trainer": f"MIVA (caches {cache})", **merged}
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both trainers")
    ap.add_argument(
        "--rows",
        nargs="+",
        default=["text", "images", "multi-turn"],
        choices=["text", "images", "multi-turn", "preset"],
    )
    ap.add_argument(
        "--policy",
        default="sft",
        help="preset row: model to start from; `sft` (default) trains the preset's SFT stage "
        "on the dataset first, as `make run` does (kept beside the dataset for reuse)",
    )
    ap.add_argument(
        "--data", default=None, help="preset row: dataset folder (synthesized if empty)"
    )
    ap.add_argument("--repeats", type=int, default=2, help="preset row: interleaved runs")
    a = ap.parse_args()
    a.cache_order = ["off", "on"]
    torch.set_num_threads(a.threads)

    from miva.agent.model import load_model

    base, processor = load_model("tiny-random")
    load_start = os.getloadavg()
    rows: list[dict] = []
    for name in a.rows:
        if name == "text":
            rows += text_row(a, base, processor)
        elif name == "images":
            rows += image_row(a, base, processor)
        elif name == "multi-turn":
            rows += multi_turn_row(a, base, processor)
        else:
            rows += preset_row(a, processor)
        print(json.dumps(rows[-1], default=str)[:400], file=sys.stderr)
    med = statistics.median
    print(
        f"\ntext / images / multi-turn rows: {a.prompts} prompts x {a.group} samples x "
        f"{a.tokens} tokens per turn; preset row: configs/tiny-cpu.yaml's GRPO settings. "
        f"{a.steps} steps per run (the first is warm-up), torch threads {a.threads}\n"
    )
    print(
        "| workload | trainer | median wall s/step | median CPU s/step | rollout s | update s "
        "| mean completion tokens | turns | steps timed |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        part = {k: f"{med(r[k][1:]):.3f}" if k in r else "-" for k in ("rollout", "update")}
        turns = f"{statistics.mean(r['turns'][1:]):.2f}" if "turns" in r else "-"
        print(
            f"| {r['row']} | {r['trainer']} | {med(r['wall'][1:]):.3f} | {med(r['cpu'][1:]):.3f} "
            f"| {part['rollout']} | {part['update']} "
            f"| {statistics.mean(r['completion'][1:] or r['completion']):.1f} | {turns} "
            f"| {len(r['wall']) - 1} |"
        )
    print()
    for i in range(1, len(rows)):
        x, y = rows[i - 1], rows[i]
        if x["row"] != y["row"]:
            continue
        if y["trainer"].startswith("TRL"):  # MIVA / TRL: below 1 is faster
            num, den, what = x, y, "ratio MIVA / TRL"
        else:  # caches off / on: the speed-up of the caches
            num, den, what = x, y, "speed-up of the caches (off / on)"
        print(
            f"{what} on {y['row']}: wall {med(num['wall'][1:]) / med(den['wall'][1:]):.2f}, "
            f"CPU {med(num['cpu'][1:]) / med(den['cpu'][1:]):.2f}"
        )
    print(f"\nload average at start {load_start}, at end {os.getloadavg()}")
    print("command: .venv/bin/python bench/grpo_vs_trl.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
