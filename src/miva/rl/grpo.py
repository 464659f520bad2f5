"""GRPO with multi-turn tool use: the training loop, top to bottom.

    set-up      samples, policy, engine, reference model (beta > 0), agent, curation, resume
    each step:
      rollout     prompts_per_step prompts x group_size trajectories through the agent
      scoring     reward components -> total (rewards/registry.py)
      mask        trajectory-level policy per status (masks.py); dynamic sampling drops
                  zero-variance groups and draws more prompts
      advantages  group-relative (advantages.py)
      update      mu optimizer steps over the batch in micro-batches (policy.py, losses.py)
      logging     JSONL + MLflow metrics, progress bar
      checkpoint  every train.checkpoint_every steps, atomic (checkpoint.py)
    end: save_pretrained model folder + curves PNG

Algorithmic choices (config key: default):
- ``train.group_size``: 8 trajectories per prompt; ``train.prompts_per_step``: 8.
- ``train.advantage_std``: ``group`` (std of the group) | ``batch`` | ``none`` (Dr.GRPO);
  ``train.adv_eps``: 1e-4.
- ``train.eps_low`` / ``train.eps_high``: 0.2 / 0.28 (DAPO clip-higher).
- ``train.beta``: 0.0 (k3 KL to a frozen reference; 0 loads no reference model);
  ``train.kl_ratio_correction``: False.
- ``train.loss_agg``: ``token-mean`` (DAPO) | ``seq-mean-token-mean`` (GRPO) |
  ``seq-mean-token-sum-norm`` (Dr.GRPO, length ``train.loss_max_tokens``).
- ``train.mu``: 2 updates per batch (so the clip acts); the old log-probs are computed once
  before the first update and stored (with mu = 1 the ratio is exactly 1).
- ``train.warmup_steps`` / ``train.lr_decay`` / ``train.min_lr_ratio``: 10 steps of linear
  warm-up, then a cosine decay to 0.1 x lr at ``train.steps``.
- ``train.dynamic_sampling``: True, at most ``train.max_refill_rounds`` (3) refills; groups
  still without signal stay out of the loss.
- ``train.status_policy``: ok=train, truncated=mask, malformed=penalize
  (``train.penalty_reward`` = -1), tool_error / max_turns / image_budget = mask.
- ``reward.weights``: 0.8 accuracy + 0.2 format + 1.2 tool gain (IMAgent / DeepEyes).
- ``train.curate``: False (rejection sampling with ``train.curate_samples`` = 4 rollouts).
- ``train.engine``: ``torch`` | ``deepspeed`` (ZeRO ``train.zero_stage`` 2 | 3).
- Non-finite rewards or losses skip the step (counted in ``train/skipped_steps``).
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from miva.errors import ConfigError, DataError
from miva.rl.advantages import get_advantage, zero_variance_groups
from miva.rl.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from miva.rl.masks import apply_status_policy
from miva.rl.metrics import MetricsLogger
from miva.rl.policy import LossSettings, PolicyBatch, micro_batch_loss
from miva.rl.rewards import score
from miva.rl.rewards.accuracy import is_correct
from miva.rl.rewards.registry import RewardSettings


@dataclass
class PromptCursor:
    """Walks the prompts in a seeded order, epoch after epoch; its state resumes exactly."""

    n: int
    seed: int
    epoch: int = 0
    pos: int = 0

    def _order(self) -> list[int]:
        order = list(range(self.n))
        random.Random(self.seed * 7919 + self.epoch).shuffle(order)
        return order

    def take(self, k: int) -> list[int]:
        out: list[int] = []
        while len(out) < k:
            order = self._order()
            grab = order[self.pos : self.pos + k - len(out)]
            out.extend(grab)
            self.pos += len(grab)
            if self.pos >= self.n:
                self.epoch, self.pos = self.epoch + 1, 0
        return out

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}


@dataclass
class StepBatch:
    trajectories: list[Any] = field(default_factory=list)
    samples: list[Any] = field(default_factory=list)
    rewards: list[dict[str, float]] = field(default_factory=list)
    totals: list[float] = field(default_factory=list)
    valid: list[bool] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    status_masked: list[bool] = field(default_factory=list)  # removed by the status policy
    zero_var_groups: int = 0
    groups_seen: int = 0
    refills: int = 0
    # every group drawn this step, before dynamic sampling kept the mixed ones (None: this batch)
    drawn: StepBatch | None = None


@dataclass
class TrainResult:
    output: str
    steps: int
    history: list[dict[str, Any]]
    skipped_steps: int
    curve: str | None


def _convert_answer(traj: Any, sample: Any, text: str) -> str | None:
    """Model-coordinate boxes -> dataset pixels through the agent runtime's one converter."""
    from miva.agent.format import parse_answer
    from miva.data.schema import format_answer

    typed = parse_answer(text, sample, traj.family, traj.frames[: len(sample.images)])
    return None if typed is None else format_answer(sample.answer_type, typed)


class GRPOTrainer:
    """Holds the state of one run; `run()` is the loop."""

    def __init__(
        self,
        cfg: Any,
        model_path: str,
        dataset: str,
        output: str,
        resume: bool = False,
        progress: bool = True,
        stop_after: int | None = None,
        samples: list[Any] | None = None,
        policy: tuple[Any, Any] | None = None,
        log_fn: Callable[[int, Any], dict[str, float] | None] | None = None,
    ) -> None:
        """`samples` and `policy` = (model, processor) may be given already loaded (benchmarks).
        `log_fn(step, model)` runs after each update (a held-out evaluation, say); the
        metrics it returns are logged with the step's."""
        from miva.agent.engines import make_engine
        from miva.agent.rollout import Agent
        from miva.agent.tools import build_tools
        from miva.rl.engines import build_engine
        from miva.rl.setup import check_batch, device_of, load_policy, load_training_samples

        # ------------------------------------------------------------------ set-up
        self.cfg, self.t = cfg, cfg.train
        self.output, self.progress, self.stop_after = output, progress, stop_after
        self.log_fn = log_fn
        self.local_out = (
            Path(output) if not str(output).startswith("s3://") else Path(cfg.workdir) / "grpo-run"
        )
        self.batch_size, self.micro_batches = check_batch(self.t)
        self.micro_size = self.batch_size // self.micro_batches
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.samples = samples if samples is not None else load_training_samples(dataset, "train")
        self.device = device_of(cfg)
        if policy is None:
            policy = load_policy(model_path, cfg.model, self.device)
        model, self.processor = policy
        self.pad_id = self.processor.tokenizer.pad_token_id
        self.ref_model = None
        if self.t.beta > 0:
            self.ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        model.train()
        self.engine = build_engine(
            self.t.engine,
            model,
            lr=self.t.lr,
            weight_decay=self.t.weight_decay,
            # the engine's schedule counts optimizer updates: mu per GRPO step
            warmup_steps=self.t.warmup_steps * self.t.mu,
            total_steps=self.t.steps * self.t.mu,
            lr_decay=self.t.lr_decay,
            min_lr_ratio=self.t.min_lr_ratio,
            max_grad_norm=self.t.max_grad_norm,
            micro_batches=self.micro_batches,
            micro_batch_size=self.micro_size,
            zero_stage=self.t.zero_stage,
            gradient_checkpointing=self.t.gradient_checkpointing,
            device=self.device,
        )
        kwargs: dict[str, Any] = {}
        if cfg.agent.engine == "vllm":
            kwargs = {
                "model_path": model_path,
                "dtype": cfg.model.dtype,
                "min_pixels": cfg.model.min_pixels,
                "max_pixels": cfg.model.max_pixels,
            }
        self.rollout_engine = make_engine(
            cfg.agent.engine, self.engine.module, self.processor, cfg.agent, **kwargs
        )
        self.agent = Agent(self.processor, cfg.agent, build_tools(cfg.agent), self.rollout_engine)
        self.rewards = RewardSettings.of(cfg.reward, convert_answer=_convert_answer)
        self.advantage = get_advantage("grpo")
        self.max_len = self.t.loss_max_tokens or cfg.agent.max_new_tokens * cfg.agent.max_turns
        self.logger = MetricsLogger(self.local_out / "metrics.jsonl")
        if not resume:
            self.logger.truncate_after(-1)  # a fresh run starts a fresh metrics file
        self.start_step, self.skipped = 0, 0
        self.cursor = PromptCursor(len(self.samples), cfg.seed)
        if self.t.curate and not resume:
            self._curate()
        if resume:
            self._resume()

    def _curate(self) -> None:
        from miva.rl.curate import curate

        result = curate(
            self.samples, self.agent, self.t.curate_samples, self.rewards, self.cfg.seed
        )
        if not result.kept:
            raise DataError(
                f"curation kept no prompt: the starting policy solves all or none of the "
                f"{len(self.samples)} prompts; turn train.curate off or start from another model"
            )
        self.logger.log(0, {"curate/kept": len(result.kept), "curate/dropped": result.dropped})
        self.samples = result.kept
        self.cursor = PromptCursor(len(self.samples), self.cfg.seed)

    def _resume(self) -> None:
        path = latest_checkpoint(self.local_out)
        if path is None:
            return
        state = load_checkpoint(path, self.engine)
        self.start_step = int(state["step"])
        self.skipped = int(state.get("skipped", 0))
        if state.get("sample_ids"):
            by_id = {s.id: s for s in self.samples}
            self.samples = [by_id[i] for i in state["sample_ids"] if i in by_id]
        self.cursor = PromptCursor(len(self.samples), self.cfg.seed, **state["cursor"])
        self.logger.truncate_after(self.start_step)

    # ------------------------------------------------------------------ rollout + scoring
    def _rollout_groups(self, step: int, round_: int, n_prompts: int) -> StepBatch:
        G = self.t.group_size
        picked = [self.samples[i] for i in self.cursor.take(n_prompts)]
        seed = self.cfg.seed * 1_000_003 + step * 101 + round_
        self.engine.module.eval()
        with torch.no_grad():
            trajs = self.agent.rollout(picked, G, seed=seed)
        self.engine.module.train()
        samples = [s for s in picked for _ in range(G)]
        rows = score(trajs, samples, self.rewards)
        statuses = [t.status for t in trajs]
        masked = apply_status_policy(
            statuses, [r["total"] for r in rows], self.t.status_policy, self.t.penalty_reward
        )
        return StepBatch(
            trajs,
            samples,
            rows,
            masked.rewards,
            masked.valid,
            statuses,
            [not v for v in masked.valid],
        )

    def _collect(self, step: int) -> StepBatch:
        """Rollout + scoring + trajectory mask, refilling zero-variance groups (DAPO)."""
        G, want = self.t.group_size, self.t.prompts_per_step
        batch = self._rollout_groups(step, 0, want)
        if not self.t.dynamic_sampling:
            batch.groups_seen = want
            zv = zero_variance_groups(torch.tensor(batch.totals), G, torch.tensor(batch.valid))
            batch.zero_var_groups = int(zv.sum())
            return batch
        kept: list[StepBatch] = []
        dropped: list[StepBatch] = []
        seen = zero_var = 0
        for round_ in range(self.t.max_refill_rounds + 1):
            if round_ > 0:
                batch = self._rollout_groups(
                    step, round_, want - sum(len(k.totals) // G for k in kept)
                )
            zv = zero_variance_groups(torch.tensor(batch.totals), G, torch.tensor(batch.valid))
            for g in range(len(zv)):
                part = _slice(batch, g * G, (g + 1) * G)
                (dropped if zv[g] else kept).append(part)
            seen += len(zv)
            zero_var += int(zv.sum())
            if sum(len(k.totals) for k in kept) >= want * G:
                break
        drawn = _concat(kept + dropped)
        groups = kept[:want]
        # not enough signal: fill with dropped groups, out of the loss (valid False)
        for part in dropped[: want - len(groups)]:
            part.valid = [False] * len(part.valid)
            groups.append(part)
        out = _concat(groups)
        out.zero_var_groups, out.groups_seen, out.refills = zero_var, seen, round_
        out.drawn = drawn
        return out

    # ------------------------------------------------------------------ update
    def _micro_batch(self, trajs: list[Any], adv: torch.Tensor, valid: list[bool]) -> PolicyBatch:
        from miva.agent.forward import collate

        b = collate(
            trajs,
            self.pad_id,
            self.processor.token_id("<|image_pad|>"),
            self.processor.merge_size,
        )
        keep = torch.tensor(valid, dtype=torch.float32).unsqueeze(1)
        mm = {k: b[k] for k in ("pixel_values", "image_grid_thw", "mm_token_type_ids") if k in b}
        return PolicyBatch(
            input_ids=b["input_ids"],
            attention_mask=b["attention_mask"],
            loss_mask=b["loss_mask"][:, 1:] * keep,
            advantages=adv,
            trajectories=trajs,
            model_kwargs=mm,
        ).to(self.device)

    def _update(self, batch: StepBatch, adv: torch.Tensor) -> dict[str, float]:
        t = self.t
        valid = batch.valid
        micro = [
            self._micro_batch(
                batch.trajectories[i : i + self.micro_size],
                adv[i : i + self.micro_size],
                valid[i : i + self.micro_size],
            )
            for i in range(0, len(batch.trajectories), self.micro_size)
        ]
        num_seqs = float(sum(valid))
        num_tokens = float(sum(float(m.loss_mask.sum()) for m in micro))
        settings = LossSettings(
            agg=t.loss_agg,
            eps_low=t.eps_low,
            eps_high=t.eps_high,
            beta=t.beta,
            kl_ratio_correction=t.kl_ratio_correction,
            temperature=self.cfg.agent.temperature or 1.0,
            max_len=self.max_len,
            num_seqs=max(num_seqs, 1.0),
            num_tokens=max(num_tokens, 1.0),
        )
        with torch.no_grad():
            for m in micro:
                if t.mu > 1:
                    m.old_logp = _logp(self.engine.module, m, settings.temperature)
                if self.ref_model is not None:
                    m.ref_logp = _logp(self.ref_model, m, settings.temperature)
        sums: dict[str, float] = {}
        grad_norms = []
        for _ in range(t.mu):
            for m in micro:
                loss, metrics = micro_batch_loss(self.engine.model, m, settings)
                if not torch.isfinite(loss):
                    raise _NonFinite(f"loss {float(loss)}")
                self.engine.backward(loss)
                w = metrics["tokens"]
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + (v if k == "tokens" else v * w)
                sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            grad_norms.append(self.engine.step())
        tokens = max(sums.pop("tokens", 0.0), 1.0)
        out = {f"train/{k}": v / tokens for k, v in sums.items() if k != "loss"}
        out["train/loss"] = sums.get("loss", 0.0) / t.mu
        out["train/grad_norm"] = grad_norms[-1]
        out["train/lr"] = self.engine.lr
        if not all(math.isfinite(g) for g in grad_norms):
            raise _NonFinite("gradient norm")
        return out

    # ------------------------------------------------------------------ the loop
    def run(self) -> TrainResult:
        t = self.t
        steps = range(self.start_step + 1, t.steps + 1)
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=t.steps, initial=self.start_step, desc="grpo", unit="step")
        for step in steps:
            t0 = time.perf_counter()
            # rollout, scoring, trajectory mask, dynamic sampling
            batch = self._collect(step)
            t_roll = time.perf_counter() - t0
            metrics = rollout_metrics(batch)
            if not all(math.isfinite(r) for r in batch.totals):
                self.skipped += 1
                metrics["train/skipped_steps"] = self.skipped
                self.logger.log(step, metrics)
                continue
            # advantages
            adv = self.advantage(
                torch.tensor(batch.totals, dtype=torch.float32),
                t.group_size,
                valid=torch.tensor(batch.valid),
                std=t.advantage_std,
                eps=t.adv_eps,
            )
            # update
            t1 = time.perf_counter()
            if any(batch.valid):
                try:
                    metrics.update(self._update(batch, adv))
                except _NonFinite:
                    self.skipped += 1
                    _zero_grads(self.engine)
                self._sync_rollout_weights()
            t_upd = time.perf_counter() - t1
            # logging
            dt = time.perf_counter() - t0
            if self.log_fn is not None:
                metrics.update(self.log_fn(step, self.engine.module) or {})
                self.engine.module.train()
            n_tokens = sum(len(x.token_ids) for x in batch.trajectories)
            metrics.update(
                {
                    "train/skipped_steps": self.skipped,
                    "perf/step_time_s": dt,
                    "perf/rollout_time_s": t_roll,
                    "perf/update_time_s": t_upd,
                    "perf/tokens_per_s": n_tokens / max(dt, 1e-9),
                }
            )
            self.logger.log(step, metrics)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    reward=f"{metrics['train/reward_mean']:.3f}",
                    acc=f"{metrics['train/accuracy']:.2f}",
                    kl=f"{metrics.get('train/kl', 0.0):.3f}",
                )
            # checkpoint
            if step % t.checkpoint_every == 0 or step == t.steps:
                save_checkpoint(
                    self.local_out,
                    step,
                    self.engine,
                    {
                        "cursor": self.cursor.state(),
                        "skipped": self.skipped,
                        "sample_ids": [s.id for s in self.samples] if t.curate else [],
                    },
                    keep=t.keep_checkpoints,
                )
            if self.stop_after is not None and step >= self.stop_after:
                break
        if bar is not None:
            bar.close()
        return self._finish()

    def _sync_rollout_weights(self) -> None:
        """A separate rollout engine (vLLM) gets the new weights after every update; the HF
        engine samples from the training model itself and needs nothing."""
        if self.cfg.agent.engine != "hf" and hasattr(self.rollout_engine, "load_weights"):
            self.rollout_engine.load_weights(self.engine.full_state_dict())

    def _finish(self) -> TrainResult:
        from miva.agent.model import save_model
        from miva.rl.plots import plot_curves

        model = self.engine.module
        model.eval()
        save_model(model, self.processor, self.output)
        curve = plot_curves(self.logger.history, self.local_out / "curves.png", "GRPO")
        return TrainResult(
            self.output,
            self.t.steps,
            self.logger.history,
            self.skipped,
            str(curve) if curve else None,
        )


class _NonFinite(Exception):
    pass


def _zero_grads(engine: Any) -> None:
    for p in engine.module.parameters():
        p.grad = None


def _logp(model: Any, batch: PolicyBatch, temperature: float) -> torch.Tensor:
    from miva.rl.policy import forward_logprobs

    return forward_logprobs(model, batch, temperature=temperature)[0].detach()


def _slice(b: StepBatch, i: int, j: int) -> StepBatch:
    return StepBatch(
        b.trajectories[i:j],
        b.samples[i:j],
        b.rewards[i:j],
        b.totals[i:j],
        b.valid[i:j],
        b.statuses[i:j],
        b.status_masked[i:j],
    )


def _concat(parts: list[StepBatch]) -> StepBatch:
    out = StepBatch()
    for p in parts:
        out.trajectories += p.trajectories
        out.samples += p.samples
        out.rewards += p.rewards
        out.totals += p.totals
        out.valid += p.valid
        out.statuses += p.statuses
        out.status_masked += p.status_masked
    return out


def rollout_metrics(batch: StepBatch) -> dict[str, float]:
    """Reward components, accuracy, tool use, turns, lengths, statuses of one batch.

    `train/*` figures describe the batch the loss trains on, after dynamic sampling kept
    mostly groups with mixed outcomes; `rollout/drawn/*` describe every group drawn this
    step before that filter: the policy's own accuracy and reward on fresh prompts."""
    from miva.rl.rewards.tool_use import zoom_on_evidence

    n = max(len(batch.trajectories), 1)
    m: dict[str, float] = {}
    drawn = batch.drawn or batch
    d = max(len(drawn.trajectories), 1)
    m["rollout/drawn/accuracy"] = sum(is_correct(r["accuracy"]) for r in drawn.rewards) / d
    finite = [r for r in drawn.totals if math.isfinite(r)]
    m["rollout/drawn/reward_mean"] = sum(finite) / max(len(finite), 1)
    m["rollout/drawn/trajectories"] = float(len(drawn.trajectories))
    zooms = [
        (c, s)
        for t, s in zip(drawn.trajectories, drawn.samples, strict=True)
        for c in t.tool_calls
        if c.name == "zoom" and c.ok
    ]
    if zooms:
        m["rollout/drawn/zoom_on_evidence"] = sum(zoom_on_evidence(c, s) for c, s in zooms) / len(
            zooms
        )
    totals = [r for r in batch.totals if math.isfinite(r)]
    m["train/reward_mean"] = sum(totals) / max(len(totals), 1)
    mean = m["train/reward_mean"]
    m["train/reward_std"] = math.sqrt(sum((r - mean) ** 2 for r in totals) / max(len(totals), 1))
    for name in batch.rewards[0] if batch.rewards else {}:
        if name != "total":
            m[f"train/reward/{name}"] = sum(r[name] for r in batch.rewards) / n
    m["train/accuracy"] = sum(is_correct(r["accuracy"]) for r in batch.rewards) / n
    tools: dict[str, int] = {}
    for traj in batch.trajectories:
        for name in {c.name for c in traj.tool_calls if c.name}:
            tools[name] = tools.get(name, 0) + 1
    m["rollout/tool_call_rate"] = sum(1 for x in batch.trajectories if x.tool_calls) / n
    for name, c in tools.items():
        m[f"rollout/tool_calls/{name}"] = c / n
    m["rollout/turns"] = sum(x.num_turns for x in batch.trajectories) / n
    m["rollout/response_tokens"] = sum(x.num_sampled_tokens for x in batch.trajectories) / n
    for status in sorted(set(batch.statuses)):
        m[f"rollout/status/{status}"] = batch.statuses.count(status) / n
        masked = sum(
            1 for s, v in zip(batch.statuses, batch.valid, strict=True) if s == status and not v
        )
        m[f"train/masked/{status}"] = masked / n
    m["train/masked_frac"] = sum(1 for v in batch.valid if not v) / n
    m["rollout/zero_var_group_frac"] = batch.zero_var_groups / max(batch.groups_seen, 1)
    m["rollout/refill_rounds"] = batch.refills
    return m


def train(
    cfg: Any,
    model_path: str,
    dataset: str,
    output: str,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Run GRPO end to end; `stop_after` ends early (tests simulate a killed run with it)."""
    if cfg.train.group_size < 2:
        raise ConfigError("train.group_size must be >= 2 for group-relative advantages")
    trainer = GRPOTrainer(cfg, model_path, dataset, output, resume, progress, stop_after)
    return trainer.run()
