"""Does GRPO add held-out accuracy over SFT alone? SFT then GRPO with the tiny preset on
synthetic multi-image tasks, greedy held-out accuracy after each, with a 95% interval and
the majority-label share of the held-out set (a constant answer scores that much).

    .venv/bin/python bench/learning.py [--task attribute] [--detail coarse] [--train 1500]
        [--test 1000] [--sft-steps 300] [--grpo-steps 100] [--grpo-lr 3e-5] [--sft-control]

Settings that keep a step cheap on a CPU: no tools (short system prompt), one turn,
images of --image-size px, describe-then-answer gold trajectories (captions from the
synthesis meta). A --curve-items slice of the held-out set is scored every
--sft-eval-every SFT steps and every --eval-every GRPO steps; the full held-out set after
each stage. Writes curve.png (held-out accuracy over wall-clock minutes through both
stages, and the GRPO reward) and result.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (c - h, c + h)


def held_out_accuracy(cfg, model, processor, samples, batch: int = 64) -> tuple[int, int]:
    """Greedy rollouts; correct when the accuracy score >= 0.5 (boxes converted)."""
    import torch

    from miva.agent.engines import make_engine
    from miva.agent.rollout import Agent
    from miva.agent.tools import build_tools
    from miva.rl.grpo import _convert_answer
    from miva.rl.rewards import score
    from miva.rl.rewards.registry import RewardSettings
    from miva.scoring import is_correct

    greedy = cfg.agent.model_copy(update={"temperature": 0.0})
    agent = Agent(
        processor, greedy, build_tools(greedy), make_engine("hf", model, processor, greedy)
    )
    settings = RewardSettings.of(cfg.reward, _convert_answer)
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(samples), batch):
            part = samples[i : i + batch]
            trajs = agent.rollout(part, 1, seed=0)
            rows = score(trajs, part, settings)
            correct += sum(is_correct(r["accuracy"]) for r in rows)
    return correct, len(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="attribute")
    ap.add_argument("--images", default="3,3", help="MIN,MAX images per sample")
    ap.add_argument("--image-size", type=int, default=56)
    ap.add_argument(
        "--detail", default="coarse", choices=["fine", "coarse"], help="synthesize.detail"
    )
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument(
        "--mc-fraction", type=float, default=0.0, help="synthesize.multiple_choice_fraction"
    )
    ap.add_argument(
        "--sft-control",
        action="store_true",
        help="also continue SFT from the SFT model for as many minutes as GRPO took: "
        "does GRPO beat more of the same supervision?",
    )
    ap.add_argument("--train", type=int, default=1500)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--sft-steps", type=int, default=300)
    ap.add_argument("--sft-lr", type=float, default=2e-3)
    ap.add_argument("--sft-batch", type=int, default=16)
    ap.add_argument("--grpo-steps", type=int, default=100)
    ap.add_argument("--grpo-lr", type=float, default=3e-5)
    ap.add_argument("--curve-items", type=int, default=200, help="held-out items of the curve")
    ap.add_argument(
        "--sft-eval-every", type=int, default=150, help="SFT steps between curve points"
    )
    ap.add_argument("--eval-every", type=int, default=10, help="GRPO steps between curve points")
    ap.add_argument("--out", default=".miva/bench/learning")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument(
        "--reuse-sft",
        action="store_true",
        help="start GRPO from OUT/sft when it exists (no new SFT)",
    )
    a = ap.parse_args()
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)

    from miva.agent.model import load_model
    from miva.config import load_config
    from miva.data.io import read_samples
    from miva.data.synth.build import run_synth
    from miva.rl.grpo import GRPOTrainer
    from miva.rl.sft import run_sft

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    n = a.train + a.test
    lo, hi = (int(x) for x in a.images.split(","))
    overrides = [
        f"synthesize.n={n}",
        f"synthesize.tasks=[{a.task}]",
        f"synthesize.images_per_sample=[{lo}, {hi}]",
        f"synthesize.image_size={a.image_size}",
        f"synthesize.detail={a.detail}",
        f"synthesize.multiple_choice_fraction={a.mc_fraction}",
        f"synthesize.splits={{train: {a.train / n:.6f}, test: {a.test / n:.6f}}}",
        "agent.tools=[]",
        "agent.max_turns=1",
        f"agent.max_new_tokens={a.max_new_tokens}",
        f"sft.steps={a.sft_steps}",
        f"sft.lr={a.sft_lr}",
        f"sft.batch_size={a.sft_batch}",
        "sft.warmup_steps=20",
        f"sft.log_every={a.sft_eval_every}",
        f"grpo.steps={a.grpo_steps}",
        f"grpo.lr={a.grpo_lr}",
        "grpo.prompts_per_step=8",
        "grpo.group_size=8",
        "grpo.micro_batch_size=32",
        "grpo.checkpoint_every=1000000",
        "grpo.max_refill_rounds=1",
        "reward.weights={accuracy: 1.0, format: 0.1}",
        # one turn, no tools: a truncated answer is a wrong answer. Masking it instead (the
        # multi-turn default) let a policy drift into truncation unopposed: 30 steps in, every
        # rollout was truncated and masked, and the gradient was zero from then on.
        "grpo.status_policy={ok: train, truncated: penalize, malformed: penalize, "
        "tool_error: mask, max_turns: mask, image_budget: mask}",
    ]
    cfg = load_config("tiny-cpu", overrides)
    data = out / "data"
    t0 = time.perf_counter()
    if not (data / "dataset.json").exists():
        run_synth(cfg.synthesize, data, progress=False)
    test = read_samples(data, "test")
    majority = Counter(json.dumps(s.answer) for s in test).most_common(1)[0][1] / len(test)
    t_data = time.perf_counter() - t0
    probe = test[: a.curve_items]
    curve: list[dict] = []  # {"stage", "step", "minutes", "accuracy"}
    clock = {"start": time.perf_counter(), "paused": 0.0}

    def point(stage: str, step: int, model, processor) -> float:
        # evaluation time is taken off the clock: the curve shows training minutes
        t = time.perf_counter()
        k, m = held_out_accuracy(cfg, model, processor, probe)
        minutes = (t - clock["start"] - clock["paused"]) / 60
        clock["paused"] += time.perf_counter() - t
        curve.append({"stage": stage, "step": step, "minutes": minutes, "accuracy": k / m})
        print(f"[{stage} step {step}] held-out accuracy {k / m:.3f} ({m} items)", flush=True)
        return k / m

    t0 = time.perf_counter()
    sft_dir = out / "sft"
    if not (a.reuse_sft and (sft_dir / "config.json").exists()):
        _, base_processor = load_model("tiny-random")
        run_sft(
            cfg,
            "tiny-random",
            str(data),
            str(sft_dir),
            progress=True,
            log_fn=lambda step, model: point("sft", step, model, base_processor),
        )
        (sft_dir / "bench_seconds.json").write_text(
            json.dumps({"seconds": time.perf_counter() - t0 - clock["paused"]})
        )
    # with --reuse-sft, the minutes of the run that made the model (the SFT control needs them)
    made = sft_dir / "bench_seconds.json"
    t_sft = json.loads(made.read_text())["seconds"] if made.exists() else math.nan
    model, processor = load_model(str(sft_dir))
    t_eval = time.perf_counter()
    k_sft, n_test = held_out_accuracy(cfg, model, processor, test)
    clock["paused"] += time.perf_counter() - t_eval  # the curve's GRPO part starts where SFT ended

    t0 = time.perf_counter()
    paused_before = clock["paused"]

    def grpo_point(step: int, model) -> dict[str, float] | None:
        if step % a.eval_every and step != a.grpo_steps:
            return None
        return {"eval/probe_accuracy": point("grpo", a.sft_steps + step, model, processor)}

    trainer = GRPOTrainer(
        cfg,
        str(sft_dir),
        str(data),
        str(out / "grpo"),
        progress=True,
        policy=(model, processor),
        log_fn=grpo_point,
    )
    res = trainer.run()
    t_grpo = time.perf_counter() - t0 - (clock["paused"] - paused_before)
    model, processor = load_model(str(out / "grpo"))
    k_grpo, _ = held_out_accuracy(cfg, model, processor, test)

    control = None
    if a.sft_control:
        # as many SFT steps as fit in GRPO's minutes, from the SFT model, at the SFT rate
        rate = t_sft / max(a.sft_steps, 1)
        steps = max(1, round(t_grpo / rate)) if math.isfinite(rate) else a.grpo_steps
        more = cfg.model_copy(
            update={"sft": cfg.sft.model_copy(update={"steps": steps, "warmup_steps": 0})}
        )
        t0 = time.perf_counter()
        clock.update(
            start=t0 - (t_sft if math.isfinite(t_sft) else 0.0), paused=0.0
        )  # the control's curve starts where SFT ended
        run_sft(
            more,
            str(sft_dir),
            str(data),
            str(out / "sft-control"),
            progress=True,
            log_fn=lambda step, model: point("sft-control", a.sft_steps + step, model, processor),
        )
        model, processor = load_model(str(out / "sft-control"))
        k_ctl, _ = held_out_accuracy(cfg, model, processor, test)
        control = {
            "steps": steps,
            "acc": k_ctl / n_test,
            "acc_ci95": wilson(k_ctl, n_test),
            "seconds": time.perf_counter() - t0,
        }

    acc_sft, acc_grpo = k_sft / n_test, k_grpo / n_test
    ci_sft, ci_grpo = wilson(k_sft, n_test), wilson(k_grpo, n_test)
    result = {
        "task": a.task,
        "detail": a.detail,
        "images": a.images,
        "held_out": n_test,
        "majority_share": majority,
        "acc_sft": acc_sft,
        "acc_sft_ci95": ci_sft,
        "acc_grpo": acc_grpo,
        "acc_grpo_ci95": ci_grpo,
        "gain_points": 100 * (acc_grpo - acc_sft),
        "seconds": {"data": t_data, "sft": t_sft, "grpo": t_grpo},
        "sft_control": control,
        "curve": curve,
        "args": vars(a),
    }
    (out / "result.json").write_text(json.dumps(result, indent=2))
    plot(
        out / "curve.png",
        curve,
        res.history,
        majority,
        n_test,
        {
            "SFT": (acc_sft, ci_sft),
            "SFT+GRPO": (acc_grpo, ci_grpo),
            **({"more SFT": (control["acc"], control["acc_ci95"])} if control else {}),
        },
    )

    print(
        f"\ntask {a.task} ({a.detail}), {a.images} images of {a.image_size} px; {a.train} train / {n_test} held-out items\n"
    )
    print("| model | held-out accuracy | 95% CI | training minutes |")
    print("|---|---|---|---|")
    print(f"| majority label | {majority:.3f} | - | - |")
    print(
        f"| SFT ({a.sft_steps} steps) | {acc_sft:.3f} | {ci_sft[0]:.3f}-{ci_sft[1]:.3f} | {t_sft / 60:.1f} |"
    )
    print(
        f"| SFT + GRPO ({a.grpo_steps} steps) | {acc_grpo:.3f} | {ci_grpo[0]:.3f}-{ci_grpo[1]:.3f} | {t_grpo / 60:.1f} |"
    )
    if control:
        lo, hi = control["acc_ci95"]
        print(
            f"| SFT continued instead ({a.sft_steps} + {control['steps']} steps, control) | {control['acc']:.3f} | {lo:.3f}-{hi:.3f} | {t_grpo / 60:.1f} |"
        )
    print(f"\nGRPO gain: {100 * (acc_grpo - acc_sft):+.1f} points")
    print("\ncommand: .venv/bin/python bench/learning.py " + " ".join(sys.argv[1:]))


def plot(path: Path, curve, history, majority, n_test, bars) -> None:
    """Curve over minutes, GRPO reward per step, and held-out accuracy bars with 95% CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(14, 3.6))
    for stage, colour in (
        ("sft", "tab:blue"),
        ("grpo", "tab:orange"),
        ("sft-control", "tab:green"),
    ):
        pts = [c for c in curve if c["stage"] == stage]
        ax0.plot(
            [c["minutes"] for c in pts],
            [c["accuracy"] for c in pts],
            "o-",
            color=colour,
            label=stage.upper(),
        )
    ax0.axhline(majority, ls="--", color="grey", label="majority label")
    ax0.set_xlabel("training minutes (evaluation excluded)")
    ax0.set_ylabel("held-out accuracy (curve slice)")
    ax0.legend()
    xs = [r["step"] for r in history]
    ax1.plot(xs, [r["train/reward_mean"] for r in history], label="reward")
    ax1.plot(xs, [r["train/accuracy"] for r in history], label="rollout accuracy")
    ax1.set_xlabel("GRPO step")
    ax1.legend()
    accs = [acc for acc, _ in bars.values()]
    ax2.bar(
        ["majority", *bars],
        [majority, *accs],
        yerr=[
            [0, *(acc - ci[0] for acc, ci in bars.values())],
            [0, *(ci[1] - acc for acc, ci in bars.values())],
        ],
    )
    ax2.set_ylabel(f"held-out accuracy ({n_test} items)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
