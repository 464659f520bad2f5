"""Evaluation: run the agent on dataset splits and benchmarks, score, compare two models.

    sets = dataset_sets(folder, ["test"]) + [benchmark_set("mig-bench", path)]
    main = evaluate(sets, generate_main, "model")          # ModelRun
    base = evaluate(sets, generate_baseline, "baseline")   # the same items
    result = combine(main, base)                           # metrics with deltas

`generate(samples, eval_set, n)` returns `n` trajectories per sample; the agent runtime's
batched multi-turn rollout provides it (`agent_generator`), tests may pass recorded
trajectories. Greedy decoding by default; with `eval.greedy = false` and `eval.pass_k = k`
it samples k trajectories per item and adds `pass@k` (the headline metrics use the first).

Metric names (flat, the same in metrics.json, KFP Metrics, MLflow and the HTML report):
`eval/<set>/<task>/<metric>` and `eval/<set>/overall/<metric>` for the evaluated model,
`baseline/<set>/...` for the baseline and `delta/<set>/...` = eval - baseline.
Agent metrics next to the scorer's: `tool_call_rate/<tool>` (share of items that called
the tool), `tool_calls_per_sample`, `mean_turns`, `tokens_per_sample`, `status/<status>`,
`pass@<k>`. What an accuracy means: `items` (how many were scored), `majority_share` (the
share of the most frequent gold answer: what answering one constant scores) and
`accuracy_ci95_low` / `accuracy_ci95_high` (Wilson 95 % interval). With a baseline,
`delta/<set>/<task>/p_value` is the exact McNemar p-value of the accuracy difference on the
same items (`eval/stats.py`).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miva.agent.coords import Frame, from_model
from miva.agent.format import parse_answer
from miva.agent.trajectory import Trajectory
from miva.data.schema import Sample
from miva.eval.dataset_scorer import DatasetScorer
from miva.eval.results import EvalResult, EvalSet, ItemRecord, ModelRun
from miva.scoring import mean, pass_at_k

Generate = Callable[[Sequence[Sample], EvalSet, int], list[list[Trajectory]]]

# ----------------------------------------------------------------------------- sets


def _hash(*parts: str) -> str:
    import hashlib

    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def split_digest(dataset_digest: str, split: str, max_items: int | None) -> str:
    """The eval-set digest of a dataset split: the dataset's content digest (dataset.json),
    the split and the item cap (the same dataset capped differently is another eval set)."""
    return _hash("dataset", dataset_digest, split, "all" if max_items is None else str(max_items))


def benchmark_digest(name: str, sample_ids: Sequence[str]) -> str:
    """The eval-set digest of a benchmark: its name and the ids of the converted items
    (sample ids are content hashes, so changed images or answers change the digest)."""
    return _hash("benchmark", name, *sorted(sample_ids))


def dataset_sets(
    source: str | Path, splits: Sequence[str], max_items: int | None = None
) -> list[EvalSet]:
    from miva.data.io import read_info, read_samples
    from miva.errors import DataError

    info = read_info(source)
    sets = []
    for split in splits:
        samples = read_samples(source, split, limit=max_items)
        if not samples:
            raise DataError(f"{source}: split {split!r} has no samples to evaluate")
        digest = split_digest(info.digest, split, max_items)
        sets.append(EvalSet(split, samples, DatasetScorer(), digest=digest))
    return sets


def benchmark_set(name: str, path: str | Path, max_items: int | None = None) -> EvalSet:
    from miva.data.benchmarks import load_benchmark
    from miva.errors import DataError

    bench, converted = load_benchmark(name, path, limit=max_items)
    if not converted.samples:
        reasons = "; ".join(f"{s.item}: {s.reason}" for s in converted.skipped[:5])
        raise DataError(f"{path}: no {bench.name} item could be read ({reasons})")
    digest = benchmark_digest(bench.name, [s.id for s in converted.samples])
    return EvalSet(
        bench.name,
        converted.samples,
        bench,
        converted.skipped,
        bench.tools or None,
        digest=digest,
    )


# ----------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class ModelAnswers:
    """Reads a trajectory's answer in dataset conventions through the agent runtime (the
    `AnswerReader` the benchmark adapters take): `parse_answer` for typed answers,
    `coords.from_model` for single boxes."""

    family: str
    frames: Sequence[Frame]

    @classmethod
    def of(cls, traj: Trajectory) -> ModelAnswers:
        return cls(traj.family, list(traj.frames))

    def answer(self, text: str, sample: Sample) -> Any:
        return parse_answer(text, sample, self.family, list(self.frames)[: len(sample.images)])

    def box(self, box: Sequence[float], image: int) -> list[float] | None:
        if not 1 <= image <= len(self.frames):
            return None
        return from_model(box, self.frames[image - 1], self.family)


def _tool_calls_json(traj: Trajectory) -> str:
    return json.dumps(
        [
            {
                "turn": c.turn,
                "name": c.name,
                "arguments": c.arguments,
                "ok": c.ok,
                "region": c.region,
            }
            for c in traj.tool_calls
        ],
        default=str,
    )


def evaluate(sets: Sequence[EvalSet], generate: Generate, model: str, n: int = 1) -> ModelRun:
    """Run `generate` on every set and score it; `n` > 1 adds pass@n."""
    metrics: dict[str, float] = {}
    records: list[ItemRecord] = []
    trajs: dict[tuple[str, str], Trajectory] = {}
    samples_by_key: dict[tuple[str, str], Sample] = {}
    for es in sets:
        groups = generate(es.samples, es, n)
        if len(groups) != len(es.samples) or any(len(g) != n for g in groups):
            raise RuntimeError(
                f"generate returned {len(groups)} groups for {len(es.samples)} samples"
            )
        predictions: list[dict[str, str | None]] = [{} for _ in range(n)]
        for sample, group in zip(es.samples, groups, strict=True):
            for j, traj in enumerate(group):
                predictions[j][sample.id] = es.scorer.prediction_from_model(
                    traj.answer, sample, ModelAnswers.of(traj)
                )
            trajs[(es.name, sample.id)] = group[0]
            samples_by_key[(es.name, sample.id)] = sample
        results = [es.scorer.score(es.samples, predictions[j], es.skipped) for j in range(n)]
        for key, value in results[0].metrics.items():
            metrics[f"{es.name}/{key}"] = float(value)
        metrics.update(_agent_metrics(es, [g[0] for g in groups]))
        metrics.update(_reading_metrics(es, results[0].items, metrics))
        if n > 1:
            correct = [[r.items[i].correct for r in results] for i in range(len(es.samples))]
            metrics.update(_pass_metrics(es, correct, n))
        for j, result in enumerate(results):
            for sample, group, item in zip(es.samples, groups, result.items, strict=True):
                traj = group[j]
                records.append(
                    ItemRecord(
                        set=es.name,
                        model=model,
                        sample_id=sample.id,
                        task=sample.task,
                        sample_index=j,
                        answer_type=sample.answer_type,
                        question=sample.question,
                        gold=sample.answer_text(),
                        raw_answer=traj.answer,
                        prediction=predictions[j][sample.id],
                        score=item.score,
                        correct=item.correct,
                        valid=item.valid,
                        status=traj.status,
                        num_turns=traj.num_turns,
                        num_tokens=traj.num_sampled_tokens,
                        tools=sorted({c.name for c in traj.tool_calls}),
                        tool_calls=_tool_calls_json(traj),
                        details=json.dumps(item.details),
                    )
                )
    return ModelRun(model, metrics, records, trajs, samples_by_key)


def _agent_metrics(es: EvalSet, trajs: Sequence[Trajectory]) -> dict[str, float]:
    by_task: dict[str, list[Trajectory]] = defaultdict(list)
    for sample, traj in zip(es.samples, trajs, strict=True):
        by_task[sample.task].append(traj)
    tools = sorted({c.name for t in trajs for c in t.tool_calls if c.name} | set(es.tools or ()))
    out: dict[str, float] = {}
    for task, group in [*by_task.items(), ("overall", list(trajs))]:
        prefix = f"{es.name}/{task}"
        for tool in tools:
            out[f"{prefix}/tool_call_rate/{tool}"] = mean(
                float(any(c.name == tool for c in t.tool_calls)) for t in group
            )
        out[f"{prefix}/tool_calls_per_sample"] = mean(len(t.tool_calls) for t in group)
        out[f"{prefix}/mean_turns"] = mean(t.num_turns for t in group)
        out[f"{prefix}/tokens_per_sample"] = mean(t.num_sampled_tokens for t in group)
    counts = Counter(t.status for t in trajs)
    for status, count in sorted(counts.items()):
        out[f"{es.name}/overall/status/{status}"] = count / len(trajs)
    return out


def _reading_metrics(
    es: EvalSet, items: Sequence[Any], metrics: dict[str, float]
) -> dict[str, float]:
    """Per task and overall: items scored, majority-label share, Wilson 95 % interval of the
    accuracy (its items are right or wrong, so k correct of n)."""
    from miva.eval.stats import majority_share, wilson

    answers: dict[str, list[Any]] = defaultdict(list)
    correct: dict[str, list[bool]] = defaultdict(list)
    for sample, item in zip(es.samples, items, strict=True):
        for task in (sample.task, "overall"):
            answers[task].append(sample.answer)
            correct[task].append(bool(item.correct))
    out: dict[str, float] = {}
    for task, answer_list in answers.items():
        prefix = f"{es.name}/{task}"
        out[f"{prefix}/items"] = float(len(answer_list))
        out[f"{prefix}/majority_share"] = majority_share(answer_list)
        if f"{prefix}/accuracy" in metrics:
            lo, hi = wilson(sum(correct[task]), len(correct[task]))
            out[f"{prefix}/accuracy_ci95_low"], out[f"{prefix}/accuracy_ci95_high"] = lo, hi
    return out


def paired_p_values(main: ModelRun, baseline: ModelRun) -> dict[str, float]:
    """`<set>/<task>/p_value`: exact McNemar p of main against baseline on the items both
    scored (first sample of each), per task and overall."""
    from miva.eval.stats import compare_paired

    def first(run: ModelRun) -> dict[tuple[str, str], ItemRecord]:
        return {(r.set, r.sample_id): r for r in run.records if r.sample_index == 0}

    mine, theirs = first(main), first(baseline)
    pairs: dict[str, tuple[list[bool], list[bool]]] = defaultdict(lambda: ([], []))
    for key, rec in mine.items():
        other = theirs.get(key)
        if other is None:
            continue
        for task in (rec.task, "overall"):
            a, b = pairs[f"{rec.set}/{task}"]
            a.append(rec.correct)
            b.append(other.correct)
    return {f"{name}/p_value": compare_paired(a, b).p_value for name, (a, b) in pairs.items()}


def _pass_metrics(es: EvalSet, correct: Sequence[Sequence[bool]], n: int) -> dict[str, float]:
    values = [pass_at_k(n, sum(c), n) for c in correct]
    by_task: dict[str, list[float]] = defaultdict(list)
    for sample, v in zip(es.samples, values, strict=True):
        by_task[sample.task].append(v)
    out = {f"{es.name}/{task}/pass@{n}": mean(v) for task, v in by_task.items()}
    out[f"{es.name}/overall/pass@{n}"] = mean(values)
    return out


_NO_DELTA = ("/items", "/majority_share", "_ci95_low", "_ci95_high")


def combine(main: ModelRun, baseline: ModelRun | None, sets: Sequence[EvalSet]) -> EvalResult:
    """Flat metrics: eval/<name>, baseline/<name>, delta/<name> (for names both runs have)."""
    metrics = {f"eval/{k}": v for k, v in main.metrics.items()}
    if baseline is not None:
        metrics.update({f"baseline/{k}": v for k, v in baseline.metrics.items()})
        for k, v in main.metrics.items():
            # a difference of item counts, majority shares or interval ends says nothing
            if k in baseline.metrics and not k.endswith(_NO_DELTA):
                metrics[f"delta/{k}"] = v - baseline.metrics[k]
        metrics.update({f"delta/{k}": v for k, v in paired_p_values(main, baseline).items()})
    return EvalResult(metrics, main, baseline, list(sets))


# ----------------------------------------------------------------------------- agent + CLI entry


def agent_generator(model_name: str, cfg: Any, greedy: bool) -> Generate:
    """`generate` backed by the agent runtime: load the model once (`miva.agent.model`),
    then the batched multi-turn rollout (`miva.agent.rollout.rollout`) on `eval.batch_size`
    samples at a time, with the set's tools when a benchmark names them.

    Greedy decoding is `agent.temperature = 0` on a copy of the agent config; otherwise the
    configured temperature / top-p sample `n` trajectories per item (pass@n). The rollout
    seed is `cfg.seed` plus the batch index, so a run is reproducible batch by batch.
    """
    from miva.agent.model import load_from_config
    from miva.agent.rollout import rollout

    model_cfg = cfg.model.model_copy(update={"name_or_path": model_name})
    model, processor = load_from_config(model_cfg)
    agent_cfg = cfg.agent.model_copy(update={"temperature": 0.0} if greedy else {})

    def generate(samples: Sequence[Sample], es: EvalSet, n: int) -> list[list[Trajectory]]:
        from tqdm import tqdm

        local_cfg = (
            agent_cfg.model_copy(update={"tools": list(es.tools)}) if es.tools else agent_cfg
        )
        groups: list[list[Trajectory]] = []
        size = cfg.evaluate.batch_size
        starts = range(0, len(samples), size)
        for b, start in enumerate(tqdm(starts, desc=f"eval {es.name} ({model_name})")):
            batch = list(samples[start : start + size])
            trajs = rollout(model, processor, batch, local_cfg, n=n, seed=cfg.seed + b)
            groups.extend(regroup(trajs, len(batch), n))
        return groups

    return generate


def regroup(trajs: Sequence[Trajectory], n_samples: int, n: int) -> list[list[Trajectory]]:
    """The rollout's flat sample-major list -> n trajectories per sample
    (trajectories of sample i are `trajs[i*n : (i+1)*n]`)."""
    if len(trajs) != n_samples * n:
        raise RuntimeError(f"rollout returned {len(trajs)} trajectories for {n_samples} x {n}")
    return [list(trajs[i * n : (i + 1) * n]) for i in range(n_samples)]


def run_eval(
    cfg: Any,
    model: str,
    dataset: str | None = None,
    benches: dict[str, str] | None = None,
    baseline: str | None = None,
    generate_factory: Callable[[str, Any, bool], Generate] = agent_generator,
) -> EvalResult:
    """Build the sets, evaluate the model (and the baseline on the same items), combine.

    Writing the outputs is `miva.eval.outputs.write_outputs`; the evaluate stage
    (`miva.stages.evaluate`) does both and logs to MLflow."""
    from miva.errors import ConfigError

    ecfg = cfg.evaluate
    sets: list[EvalSet] = []
    if dataset:
        sets += dataset_sets(dataset, ecfg.splits, ecfg.max_items)
    for name, path in (benches or {}).items():
        sets.append(benchmark_set(name, path, ecfg.max_items))
    if not sets:
        raise ConfigError("nothing to evaluate: give --dataset and/or --bench NAME --path FOLDER")
    for es in sets:  # dataset splits use the configured tools (named so usage metrics list them)
        es.tools = es.tools or tuple(cfg.agent.tools)
    n = 1 if ecfg.greedy else ecfg.pass_k
    main = evaluate(sets, generate_factory(model, cfg, ecfg.greedy), model, n)
    base = None
    if baseline:
        base = evaluate(sets, generate_factory(baseline, cfg, ecfg.greedy), baseline, n)
    if ecfg.attention_diagnostics:
        from miva.eval.attention import diagnose_run

        for run in filter(None, (main, base)):
            diagnose_run(run, sets, cfg)
    return combine(main, base, sets)
