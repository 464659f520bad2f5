"""Does GRPO add held-out accuracy over SFT? And do tools? The tiny preset on synthetic tasks.

    .venv/bin/python bench/learning.py --task attribute [--model tiny-pretrained]
        [--train 4000 --val 300 --test 1000] [--sft-steps 300] [--grpo-steps 60]
        [--set grpo.mu=2 --set grpo.lr=1e-4 ...] [--sft-control] [--out DIR]
    .venv/bin/python bench/learning.py --task closeup --tools-experiment ...

What it measures, in order, on one synthetic dataset with train / val / test splits:
1. SFT from `--model` on describe-then-answer gold trajectories; a curve of greedy accuracy
   on a slice of the validation split every `--sft-eval-every` steps.
2. Sharpening headroom of the SFT model on the validation slice: greedy accuracy, accuracy
   of one sample at the training temperature, pass@k and majority-vote@k over k samples.
   GRPO can only sharpen what the policy already tells apart: a pass@k far above the
   greedy accuracy is headroom, a near-uniform sampler is not.
3. GRPO from the SFT model (`--set grpo.*` chooses the recipe; choose it on the
   validation curve, never on the test items), the validation curve every `--eval-every`
   steps, over training minutes.
4. `--sft-control`: SFT continued from the same SFT model for as many minutes as GRPO took.
5. On every test item (>= 1,000 recommended): greedy accuracy and accuracy at the training
   temperature of each model, the majority-label share, Wilson 95 % intervals, and the
   exact McNemar test of every comparison on the same items (GRPO vs SFT, GRPO vs control).

`--tools-experiment` (task `closeup`: a small object's colour that only a zoom shows) trains
one SFT model on gold trajectories with and without tools (`sft.no_tool_fraction`), whose
zooms come from an imperfect demonstrator (`sft.zoom_demo_accuracy`), then GRPO twice from
it for the same steps: with the zoom tool and without tools. It reports held-out accuracy,
the tool-call rate and the share of zooms whose region overlaps the evidence, over training
(validation slice) and at the end (test), and McNemar of tools against no tools.

Evaluation time is off the training clock. Writes result.json and curve.png in --out.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from miva.eval.stats import compare_paired, majority_share, wilson

# ----------------------------------------------------------------------------- evaluation


@dataclass
class Scored:
    """Per-item outcome of k rollouts of one model on some items."""

    correct: list[list[bool]]  # [item][sample]
    tool_calls: int  # trajectories with at least one tool call
    zooms: int  # successful zoom calls
    zooms_on_evidence: int  # of which the region overlaps the evidence
    trajectories: int
    truncated: int

    @property
    def first(self) -> list[bool]:
        return [c[0] for c in self.correct]

    def accuracy(self) -> float:
        return sum(self.first) / max(len(self.first), 1)

    def pass_at_k(self) -> float:
        return sum(any(c) for c in self.correct) / max(len(self.correct), 1)

    def sample_accuracy(self) -> float:
        flat = [x for c in self.correct for x in c]
        return sum(flat) / max(len(flat), 1)

    def tool_call_rate(self) -> float:
        return self.tool_calls / max(self.trajectories, 1)

    def zoom_on_evidence_share(self) -> float:
        return self.zooms_on_evidence / self.zooms if self.zooms else math.nan


def score_model(cfg, model, processor, samples, temperature: float, k: int = 1, seed: int = 0):
    """k rollouts per item at `temperature` (0: greedy) with cfg.agent's tools; correct when
    the accuracy reward >= 0.5 (boxes converted). Also majority-vote answers per item."""
    import torch

    from miva.agent.engines import make_engine
    from miva.agent.rollout import Agent
    from miva.agent.tools import build_tools
    from miva.rl.grpo import _convert_answer
    from miva.rl.rewards import score
    from miva.rl.rewards.registry import RewardSettings
    from miva.rl.rewards.tool_use import zoom_on_evidence
    from miva.scoring import is_correct

    agent_cfg = cfg.agent.model_copy(update={"temperature": temperature})
    agent = Agent(
        processor,
        agent_cfg,
        build_tools(agent_cfg),
        make_engine("hf", model, processor, agent_cfg),
    )
    settings = RewardSettings.of(cfg.reward, _convert_answer)
    was_training = model.training
    model.eval()
    out = Scored([], 0, 0, 0, 0, 0)
    votes: list[bool] = []
    batch = max(1, 64 // k)
    with torch.no_grad():
        for i in range(0, len(samples), batch):
            part = samples[i : i + batch]
            trajs = agent.rollout(part, k, seed=seed + i)
            flat = [s for s in part for _ in range(k)]
            rows = score(trajs, flat, settings)
            for j in range(len(part)):
                group = range(j * k, (j + 1) * k)
                out.correct.append([is_correct(rows[g]["accuracy"]) for g in group])
                answers = Counter(
                    (trajs[g].answer or "").strip().lower() for g in group if trajs[g].answer
                )
                if answers:
                    top = answers.most_common(1)[0][0]
                    g = next(g for g in group if (trajs[g].answer or "").strip().lower() == top)
                    votes.append(is_correct(rows[g]["accuracy"]))
                else:
                    votes.append(False)
            for t, s in zip(trajs, flat, strict=True):
                out.trajectories += 1
                out.truncated += t.status == "truncated"
                out.tool_calls += bool(t.tool_calls)
                for c in t.tool_calls:
                    if c.name == "zoom" and c.ok:
                        out.zooms += 1
                        out.zooms_on_evidence += zoom_on_evidence(c, s)
    if was_training:
        model.train()
    out.votes = votes  # type: ignore[attr-defined]
    return out


def headroom(cfg, model, processor, samples, k: int, temperature: float) -> dict[str, float]:
    """Greedy vs one sample at the training temperature vs pass@k and majority@k."""
    greedy = score_model(cfg, model, processor, samples, 0.0)
    sampled = score_model(cfg, model, processor, samples, temperature, k=k, seed=17)
    return {
        "items": len(samples),
        "greedy": greedy.accuracy(),
        "sample_t1": sampled.sample_accuracy(),
        f"pass@{k}": sampled.pass_at_k(),
        f"majority@{k}": sum(sampled.votes) / max(len(sampled.votes), 1),  # type: ignore[attr-defined]
    }


# ----------------------------------------------------------------------------- the run


class Clock:
    """Training minutes with evaluation taken off."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.paused = 0.0

    def minutes(self) -> float:
        return (time.perf_counter() - self.start - self.paused) / 60

    def pause(self, fn, *args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.paused += time.perf_counter() - t


def build_config(a, extra: list[str]):
    from miva.config import load_config

    n = a.train + a.val + a.test
    lo, hi = (int(x) for x in a.images.split(","))
    tools = a.task == "closeup" and a.tools_experiment
    overrides = [
        f"model.name_or_path={a.model}",
        f"synthesize.n={n}",
        f"synthesize.tasks=[{a.task}]",
        f"synthesize.images_per_sample=[{lo}, {hi}]",
        f"synthesize.image_size={a.image_size}",
        f"synthesize.detail={a.detail}",
        f"synthesize.multiple_choice_fraction={a.mc_fraction}",
        # the last fraction takes the rounding, so that they sum to 1 exactly
        f"synthesize.splits={{train: {a.train / n:.6f}, val: {a.val / n:.6f}, "
        f"test: {1 - round(a.train / n, 6) - round(a.val / n, 6):.6f}}}",
        f"agent.tools={'[zoom]' if tools else '[]'}",
        f"agent.max_turns={2 if tools else 1}",
        f"agent.max_new_tokens={a.max_new_tokens}",
        "agent.prompt_style=compact",
        f"sft.steps={a.sft_steps}",
        f"sft.lr={a.sft_lr}",
        f"sft.batch_size={a.sft_batch}",
        "sft.warmup_steps=20",
        f"sft.log_every={a.sft_eval_every}",
        f"grpo.steps={a.grpo_steps}",
        "grpo.checkpoint_every=1000000",
        "grpo.max_refill_rounds=1",
        "reward.weights={accuracy: 1.0, format: 0.1}",
        # one turn without tools: a truncated answer is a wrong answer. Masking it instead
        # (the multi-turn default) let a policy drift into truncation unopposed.
        "grpo.status_policy={ok: train, truncated: penalize, malformed: penalize, "
        "tool_error: mask, max_turns: penalize, image_budget: mask}",
    ]
    if tools:
        overrides += [
            f"sft.no_tool_fraction={a.no_tool_fraction}",
            f"sft.zoom_demo_accuracy={a.zoom_demo_accuracy}",
        ]
    return load_config("tiny-cpu", overrides + extra)


def without_tools(cfg):
    return cfg.model_copy(
        update={"agent": cfg.agent.model_copy(update={"tools": [], "max_turns": 1})}
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="attribute")
    ap.add_argument("--model", default="tiny-pretrained", help="starting model of SFT")
    ap.add_argument("--images", default="3,3", help="MIN,MAX images per sample")
    ap.add_argument("--image-size", type=int, default=56)
    ap.add_argument("--detail", default="coarse", choices=["fine", "coarse"])
    ap.add_argument(
        "--max-new-tokens",
        type=int,
        help="agent.max_new_tokens (default 32; 48 with --tools-experiment, whose gold zoom "
        "turn, a thought naming the region plus the call, takes 35-36 tokens)",
    )
    ap.add_argument("--mc-fraction", type=float, default=0.0)
    ap.add_argument("--train", type=int, default=4000)
    ap.add_argument("--val", type=int, default=300)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--sft-steps", type=int, default=300)
    ap.add_argument("--sft-lr", type=float, default=2e-3)
    ap.add_argument("--sft-batch", type=int, default=16)
    ap.add_argument("--sft-eval-every", type=int, default=100)
    ap.add_argument("--grpo-steps", type=int, default=60)
    ap.add_argument("--grpo-lr", type=float, help="grpo.lr (default: the preset's)")
    ap.add_argument("--eval-every", type=int, default=10, help="GRPO steps between curve points")
    ap.add_argument("--curve-items", type=int, default=200, help="validation items per point")
    ap.add_argument("--headroom-k", type=int, default=8, help="samples per item for pass@k")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--sft-control", action="store_true")
    ap.add_argument("--tools-experiment", action="store_true", help="closeup: tools vs none")
    ap.add_argument("--no-tool-fraction", type=float, default=0.5)
    ap.add_argument("--zoom-demo-accuracy", type=float, default=0.5)
    ap.add_argument("--reuse-sft", action="store_true", help="start from OUT/sft if it exists")
    ap.add_argument("--skip-t1", action="store_true", help="no test accuracy at temperature 1")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default=".miva/bench/learning")
    a = ap.parse_args()
    if a.tools_experiment and a.task != "closeup":
        ap.error("--tools-experiment needs --task closeup")
    if a.max_new_tokens is None:
        a.max_new_tokens = 48 if a.tools_experiment else 32
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    from miva.agent.model import load_model
    from miva.data.io import read_samples
    from miva.data.synth.build import run_synth
    from miva.rl.grpo import GRPOTrainer
    from miva.rl.sft import run_sft

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = build_config(a, ([f"grpo.lr={a.grpo_lr}"] if a.grpo_lr else []) + a.overrides)
    data = out / "data"
    if not (data / "dataset.json").exists():
        run_synth(cfg.synthesize, data, progress=False)
    val = read_samples(data, "val")[: a.curve_items]
    test = read_samples(data, "test")
    majority = majority_share(s.answer for s in test)
    temp = cfg.agent.temperature or 1.0
    curve: list[dict[str, Any]] = []
    arms = {"tools": cfg, "no tools": without_tools(cfg)} if a.tools_experiment else {"": cfg}

    def point(stage: str, step: int, model, processor, clock: Clock, offset: float) -> dict:
        row: dict[str, Any] = {"stage": stage, "step": step, "minutes": offset + clock.minutes()}
        for arm, arm_cfg in arms.items():
            if stage.startswith("grpo") and arm and not stage.endswith(arm):
                continue
            s = clock.pause(score_model, arm_cfg, model, processor, val, 0.0)
            key = f"{arm} " if arm else ""
            row[f"{key}accuracy"] = s.accuracy()
            if arm_cfg.agent.tools:
                row[f"{key}tool_call_rate"] = s.tool_call_rate()
                row[f"{key}zoom_on_evidence"] = s.zoom_on_evidence_share()
        curve.append(row)
        print(f"[{stage} step {step}, {row['minutes']:.1f} min] {_fmt(row)}", flush=True)
        return row

    # ------------------------------------------------------------------ SFT
    sft_dir = out / "sft"
    clock = Clock()
    if not (a.reuse_sft and (sft_dir / "config.json").exists()):
        _, base_processor = load_model(a.model)
        run_sft(
            cfg,
            a.model,
            str(data),
            str(sft_dir),
            progress=True,
            log_fn=lambda step, model: point("sft", step, model, base_processor, clock, 0.0),
        )
        (sft_dir / "bench_seconds.json").write_text(json.dumps({"seconds": clock.minutes() * 60}))
    made = sft_dir / "bench_seconds.json"
    t_sft = json.loads(made.read_text())["seconds"] if made.exists() else math.nan
    sft_model, processor = load_model(str(sft_dir))
    room = {
        arm or "model": headroom(arm_cfg, sft_model, processor, val, a.headroom_k, temp)
        for arm, arm_cfg in arms.items()
    }
    print(f"sharpening headroom of the SFT model (validation): {json.dumps(room)}", flush=True)

    # ------------------------------------------------------------------ GRPO
    grpo_runs: dict[str, dict[str, Any]] = {}
    for arm, arm_cfg in arms.items():
        name = f"grpo-{arm.replace(' ', '-')}" if arm else "grpo"
        model, processor = load_model(str(sft_dir))
        clock = Clock()
        offset = t_sft / 60 if math.isfinite(t_sft) else 0.0
        stage = f"grpo {arm}".strip()

        def grpo_point(
            step: int, model, stage=stage, clock=clock, offset=offset, processor=processor
        ):
            if step % a.eval_every and step != a.grpo_steps:
                return None
            row = point(stage, a.sft_steps + step, model, processor, clock, offset)
            return {f"eval/val_{k}": v for k, v in row.items() if isinstance(v, float)}

        trainer = GRPOTrainer(
            arm_cfg,
            str(sft_dir),
            str(data),
            str(out / name),
            progress=True,
            policy=(model, processor),
            log_fn=grpo_point,
        )
        res = trainer.run()
        grpo_runs[arm] = {
            "dir": out / name,
            "seconds": clock.minutes() * 60,
            "history": res.history,
        }

    # ------------------------------------------------------------------ SFT control
    control_dir = out / "sft-control"
    control = None
    if a.sft_control:
        t_grpo = max(r["seconds"] for r in grpo_runs.values())
        rate = t_sft / max(a.sft_steps, 1)
        steps = max(1, round(t_grpo / rate)) if math.isfinite(rate) else a.grpo_steps
        more = cfg.model_copy(
            update={"sft": cfg.sft.model_copy(update={"steps": steps, "warmup_steps": 0})}
        )
        clock = Clock()
        run_sft(
            more,
            str(sft_dir),
            str(data),
            str(control_dir),
            progress=True,
            log_fn=lambda step, model: point(
                "sft-control", a.sft_steps + step, model, processor, clock, t_sft / 60
            ),
        )
        control = {"steps": steps, "seconds": clock.minutes() * 60}

    # ------------------------------------------------------------------ test items
    models: dict[str, tuple[Path, Any]] = {}
    for arm, arm_cfg in arms.items():
        label = f" ({arm})" if arm else ""
        models[f"SFT{label}"] = (sft_dir, arm_cfg)
        models[f"SFT + GRPO{label}"] = (grpo_runs[arm]["dir"], arm_cfg)
    if control:
        models["SFT continued (control)"] = (control_dir, cfg)
    scored: dict[str, dict[str, Any]] = {}
    for label, (folder, arm_cfg) in models.items():
        model, processor = load_model(str(folder))
        g = score_model(arm_cfg, model, processor, test, 0.0)
        row: dict[str, Any] = {"greedy": g, "acc": g.accuracy()}
        if not a.skip_t1:
            row["t1"] = score_model(arm_cfg, model, processor, test, temp, seed=29)
            row["acc_t1"] = row["t1"].accuracy()
        scored[label] = row
        print(f"{label}: greedy {g.accuracy():.3f}", flush=True)

    comparisons = {}

    def compare(x: str, y: str) -> None:
        if x in scored and y in scored:
            c = compare_paired(scored[x]["greedy"].first, scored[y]["greedy"].first)
            comparisons[f"{x} vs {y}"] = c.to_dict()
            if "t1" in scored[x] and "t1" in scored[y]:
                c = compare_paired(scored[x]["t1"].first, scored[y]["t1"].first)
                comparisons[f"{x} vs {y}, one sample at T=1"] = c.to_dict()

    for arm in arms:
        label = f" ({arm})" if arm else ""
        compare(f"SFT + GRPO{label}", f"SFT{label}")
    compare("SFT + GRPO", "SFT continued (control)")
    if a.tools_experiment:
        compare("SFT + GRPO (tools)", "SFT + GRPO (no tools)")
        compare("SFT (tools)", "SFT (no tools)")

    n_test = len(test)
    result = {
        "task": a.task,
        "model": a.model,
        "test_items": n_test,
        "majority_share": majority,
        "headroom_val": room,
        "models": {
            label: {
                "acc": r["acc"],
                "acc_ci95": wilson(sum(r["greedy"].first), n_test),
                "acc_t1": r.get("acc_t1"),
                "tool_call_rate": r["greedy"].tool_call_rate(),
                "zoom_on_evidence": r["greedy"].zoom_on_evidence_share(),
                "truncated": r["greedy"].truncated / max(r["greedy"].trajectories, 1),
            }
            for label, r in scored.items()
        },
        "comparisons": comparisons,
        "minutes": {
            "sft": t_sft / 60,
            **{f"grpo {arm}".strip(): r["seconds"] / 60 for arm, r in grpo_runs.items()},
            **({"sft control": control["seconds"] / 60} if control else {}),
        },
        "sft_control_steps": control["steps"] if control else None,
        "curve": curve,
        "grpo_history": {arm or "grpo": r["history"] for arm, r in grpo_runs.items()},
        "args": vars(a),
        "config_overrides": a.overrides,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    plot(out / "curve.png", curve, result)
    print_tables(result, a)


def _fmt(row: dict[str, Any]) -> str:
    return ", ".join(
        f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float) and k != "minutes"
    )


def print_tables(r: dict[str, Any], a) -> None:
    n = r["test_items"]
    print(
        f"\ntask {r['task']} from {r['model']}; {n} test items, majority share {r['majority_share']:.3f}\n"
    )
    print(
        "| model | greedy accuracy | 95% CI | accuracy at T=1 | tool-call rate | zooms on evidence | training minutes |"
    )
    print("|---|---|---|---|---|---|---|")
    print(f"| majority label | {r['majority_share']:.3f} | - | - | - | - | - |")
    mins = r["minutes"]
    for label, m in r["models"].items():
        lo, hi = m["acc_ci95"]
        t1 = f"{m['acc_t1']:.3f}" if m["acc_t1"] is not None else "-"
        arm = label[label.find("(") + 1 : -1] if "(" in label else ""
        minutes = (
            mins["sft"]
            if label.startswith("SFT (") or label == "SFT"
            else mins.get("sft control" if "control" in label else f"grpo {arm}".strip(), math.nan)
        )
        z = m["zoom_on_evidence"]
        print(
            f"| {label} | {m['acc']:.3f} | {lo:.3f}-{hi:.3f} | {t1} | {m['tool_call_rate']:.2f} | "
            f"{'-' if z != z else f'{z:.2f}'} | {minutes:.1f} |"
        )
    print(
        "\n| comparison (same test items) | gain, points | only A right | only B right | exact McNemar p |"
    )
    print("|---|---|---|---|---|")
    for name, c in r["comparisons"].items():
        print(
            f"| {name} | {c['gain_points']:+.1f} | {c['only_a']} | {c['only_b']} | {c['p_value']:.2g} |"
        )
    print(f"\nsharpening headroom (validation, SFT model): {json.dumps(r['headroom_val'])}")
    print("\ncommand: .venv/bin/python bench/learning.py " + " ".join(sys.argv[1:]))


def plot(path: Path, curve, result) -> None:
    """Validation accuracy (and zoom figures) over training minutes; test bars with CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for row in curve for k in row if k.endswith(("accuracy", "zoom_on_evidence"))})
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(13, 4))
    for stage in dict.fromkeys(row["stage"] for row in curve):
        pts = [row for row in curve if row["stage"] == stage]
        for k in keys:
            ys = [row.get(k) for row in pts]
            if all(y is None for y in ys):
                continue
            ax0.plot(
                [row["minutes"] for row in pts],
                ys,
                "o-" if "accuracy" in k else "x--",
                label=f"{stage}: {k}",
            )
    ax0.axhline(result["majority_share"], ls=":", color="grey", label="majority label")
    ax0.set_xlabel("training minutes (evaluation excluded)")
    ax0.set_ylabel(f"validation slice ({result['args']['curve_items']} items)")
    ax0.legend(fontsize=7)
    labels = list(result["models"])
    accs = [result["models"][m]["acc"] for m in labels]
    cis = [result["models"][m]["acc_ci95"] for m in labels]
    ax1.bar(
        ["majority", *labels],
        [result["majority_share"], *accs],
        yerr=[
            [0, *(x - c[0] for x, c in zip(accs, cis, strict=True))],
            [0, *(c[1] - x for x, c in zip(accs, cis, strict=True))],
        ],
    )
    ax1.set_ylabel(f"greedy test accuracy ({result['test_items']} items)")
    ax1.tick_params(axis="x", labelrotation=20, labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
