"""Orchestration: plan -> (workers) design, ask, solve, verify, render -> balance -> write.

Determinism: sample i is built from its own seed `sample_seed(seed, i, attempt)`, the
task of sample i is `tasks[i % len(tasks)]` and its split comes from one seeded shuffle of
all indices, so the output does not depend on the number of worker processes. Balancing
(option letters, answer images) runs afterwards in index order in the main process.
Images are drawn per sample, so no image is shared across splits (checked by hash).
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from miva.config import SynthesizeConfig
from miva.data.schema import Evidence, Sample
from miva.data.synth.questions import WRITERS, Item, format_question
from miva.data.synth.render import render_scene
from miva.data.synth.scene import PlacementError, SceneDesigner, caption
from miva.data.synth.solver import scene_from_dict, solve
from miva.data.synth.verifier import (
    answer_image,
    assign_balanced,
    balance_violations,
    letter,
    verify,
)
from miva.errors import DataError

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 40


def sample_seed(seed: int, index: int, salt: str | int = 0) -> int:
    """A 63-bit seed for one sample, independent of worker count and order."""
    digest = hashlib.sha256(f"miva-synth:{seed}:{index}:{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def split_plan(n: int, splits: dict[str, float], seed: int) -> list[str]:
    """Split name of each index: exact counts (largest remainder), seeded shuffle."""
    names = list(splits)
    raw = [splits[s] * n for s in names]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(names)), key=lambda i: raw[i] - counts[i], reverse=True)[
        : n - sum(counts)
    ]:
        counts[i] += 1
    labels = [s for s, c in zip(names, counts, strict=True) for _ in range(c)]
    random.Random(sample_seed(seed, -1, "splits")).shuffle(labels)
    return labels


@dataclass
class Draft:
    """A verified item with rendered images, before balancing (picklable)."""

    index: int
    task: str
    split: str
    scene: dict[str, Any]
    query: dict[str, Any]
    answer_type: str
    template: str
    stem: str
    options: list[str] | None
    value: Any
    evidence: list[tuple[int, list[int]]]
    images: list[bytes]
    captions: list[str]
    attempts: int
    rejects: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    seed: int
    tasks: tuple[str, ...]
    images_per_sample: tuple[int, int]
    image_size: int
    mc_fraction: float
    min_side_fraction: float
    coarse: bool = False

    def __call__(self, index: int, split: str) -> Draft:
        return build_item(self, index, split)


def build_item(job: Job, index: int, split: str) -> Draft:
    """Design, write, solve and verify one item (retrying with fresh seeds), then render it."""
    task = job.tasks[index % len(job.tasks)]
    rejects: Counter[str] = Counter()
    for attempt in range(MAX_ATTEMPTS):
        rng = random.Random(sample_seed(job.seed, index, attempt))
        n = rng.randint(*job.images_per_sample)
        mc = rng.random() < job.mc_fraction
        try:
            item: Item = WRITERS[task](SceneDesigner(rng, job.image_size, coarse=job.coarse), n, mc)
        except PlacementError:
            rejects["placement"] += 1
            continue
        solution = solve(item.scene, item.query)
        reasons = verify(
            task,
            solution,
            job.image_size,
            job.min_side_fraction,
            item.options,
            str(solution.value) if item.options is not None else None,
        )
        if reasons:
            rejects[reasons[0].split(":")[0]] += 1
            continue
        return Draft(
            index=index,
            task=task,
            split=split,
            scene=item.scene.to_dict(),
            query=item.query,
            answer_type=item.answer_type,
            template=item.template,
            stem=item.stem,
            options=item.options,
            value=solution.value,
            evidence=solution.evidence,
            images=render_scene(item.scene),
            captions=[caption(im, item.scene.size) for im in item.scene.images],
            attempts=attempt + 1,
            rejects=dict(rejects),
        )
    raise DataError(
        f"sample {index} ({task}): no valid item after {MAX_ATTEMPTS} attempts ({dict(rejects)})"
    )


Builder = Callable[[int, str], Draft]
_BUILDER: Builder | None = None
_SPLITS: list[str] = []


def _init(builder: Builder, splits: list[str]) -> None:
    global _BUILDER, _SPLITS
    _BUILDER, _SPLITS = builder, splits


def _work(index: int) -> Draft:
    assert _BUILDER is not None
    return _BUILDER(index, _SPLITS[index])


def iter_drafts(
    builder: Builder, splits: list[str], workers: int, progress: bool = True
) -> Iterator[Draft]:
    """Drafts in index order, built by `workers` processes (the output does not depend on it)."""
    from tqdm import tqdm

    n = len(splits)
    bar = tqdm(total=n, desc="synth", unit="sample", disable=not progress)
    try:
        if workers <= 1:
            _init(builder, splits)
            for i in range(n):
                yield _work(i)
                bar.update()
            return
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        chunk = max(1, min(32, n // (workers * 8) or 1))
        with ctx.Pool(workers, initializer=_init, initargs=(builder, splits)) as pool:
            for draft in pool.imap(_work, range(n), chunksize=chunk):
                yield draft
                bar.update()
    finally:
        bar.close()


# ------------------------------------------------------------------------ balancing


def swap_images(draft: Draft, i: int, j: int) -> None:
    """Exchange images i and j (1-based) of a draft whose question names no image."""
    if i == j:
        return
    for seq in (draft.images, draft.captions, draft.scene["images"]):
        seq[i - 1], seq[j - 1] = seq[j - 1], seq[i - 1]
    solution = solve(scene_from_dict(draft.scene), draft.query)
    draft.value, draft.evidence = solution.value, solution.evidence


def balance_split(drafts: list[Draft], seed: int) -> None:
    """Move answer images and option letters so the split meets the verifier's balance rules."""
    imaged = [d for d in drafts if d.answer_type in ("image_index", "image_bbox")]
    targets = assign_balanced(
        [len(d.images) for d in imaged],
        [random.Random(sample_seed(seed, d.index, "image")).random() for d in imaged],
    )
    for d, pos in zip(imaged, targets, strict=True):
        k = pos + 1
        assert not any(key in d.query for key in ("image", "a", "b")), d.query
        swap_images(d, answer_image(d.answer_type, d.value), k)
        assert answer_image(d.answer_type, d.value) == k
    choice = [d for d in drafts if d.options is not None]
    positions = assign_balanced(
        [len(d.options or []) for d in choice],
        [random.Random(sample_seed(seed, d.index, "letter")).random() for d in choice],
    )
    for d, pos in zip(choice, positions, strict=True):
        options = list(d.options or [])
        correct = str(d.value)
        others = [o for o in options if o != correct]
        random.Random(sample_seed(seed, d.index, "options")).shuffle(others)
        others.insert(pos, correct)
        d.options = others


def recorded_sizes(scene: dict[str, Any]) -> list[list[int]]:
    """[[width, height], ...] per image: drawn scenes are square, COCO images keep their own."""
    if "size" in scene:
        return [[scene["size"], scene["size"]] for _ in scene["images"]]
    return [[im["width"], im["height"]] for im in scene["images"]]


def to_sample(d: Draft, seed: int, paraphrased: str | None = None, source: str = "synth") -> Sample:
    stem = paraphrased or d.stem
    if d.options is not None:
        answer: Any = letter(d.options.index(str(d.value)))
    else:
        answer = d.value
    if d.answer_type == "bbox":
        answer = [float(v) for v in answer]
    elif d.answer_type == "image_bbox":
        answer = {"image": int(answer["image"]), "bbox": [float(v) for v in answer["bbox"]]}
    return Sample(
        task=d.task,
        images=d.images,
        question=format_question(stem, d.answer_type, d.options),
        answer_type=d.answer_type,
        answer=answer,
        choices=d.options,
        evidence=[Evidence(k, tuple(float(v) for v in box)) for k, box in d.evidence],  # type: ignore[arg-type]
        split=d.split,
        source=source,
        meta={
            "scene": d.scene,
            "query": d.query,
            "template": d.template,
            "stem": d.stem,
            "captions": d.captions,
            # validation compares every decoded image against these recorded sizes
            "image_sizes": recorded_sizes(d.scene),
            "value": d.value,
            "index": d.index,
            "seed": sample_seed(seed, d.index, d.attempts - 1),
            "attempts": d.attempts,
            "paraphrased": paraphrased is not None,
        },
    )


# ------------------------------------------------------------------------ entry point


@dataclass
class SynthResult:
    samples: list[Sample]
    rejects: dict[str, int]
    violations: dict[str, list[str]]
    dropped_shared_images: int = 0
    skipped: list[str] = field(default_factory=list)  # input entries skipped (COCO), with reasons
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase


def synthesize(cfg: SynthesizeConfig, progress: bool = True) -> SynthResult:
    """Generate `cfg.n` verified, balanced samples (in memory)."""
    unknown = [t for t in cfg.tasks if t not in WRITERS]
    if unknown:
        raise ValueError(f"no question writer for {unknown}")
    job = Job(
        seed=cfg.seed,
        tasks=tuple(cfg.tasks),
        images_per_sample=tuple(cfg.images_per_sample),  # type: ignore[arg-type]
        image_size=cfg.image_size,
        mc_fraction=cfg.multiple_choice_fraction,
        min_side_fraction=cfg.min_target_side_fraction,
        coarse=cfg.detail == "coarse",
    )
    splits = split_plan(cfg.n, cfg.splits, cfg.seed)
    t0 = time.perf_counter()
    drafts = list(iter_drafts(job, splits, cfg.workers, progress))
    t1 = time.perf_counter()
    result = finish(drafts, cfg, progress)
    result.timings = {"drafts_s": t1 - t0, "finish_s": time.perf_counter() - t1}
    return result


def finish(
    drafts: list[Draft], cfg: SynthesizeConfig, progress: bool = True, source: str = "synth"
) -> SynthResult:
    """Balance, paraphrase and turn drafts into samples; check balance and split isolation."""
    drafts.sort(key=lambda d: d.index)
    rejects: Counter[str] = Counter()
    for d in drafts:
        rejects.update(d.rejects)
    by_split: dict[str, list[Draft]] = {}
    for d in drafts:
        by_split.setdefault(d.split, []).append(d)
    for split_drafts in by_split.values():
        balance_split(split_drafts, cfg.seed)

    stems = [d.stem for d in drafts]
    rewritten: list[str | None] = [None] * len(drafts)
    if cfg.paraphrase.enabled:
        from miva.data.synth.paraphrase import paraphrase_all

        rewritten = paraphrase_all(stems, cfg.paraphrase, progress=progress)

    samples: list[Sample] = []
    seen: dict[str, str] = {}
    dropped = 0
    for d, para in zip(drafts, rewritten, strict=True):
        hashes = {hashlib.sha256(b).hexdigest() for b in d.images}
        if any(seen.get(h, d.split) != d.split for h in hashes):
            log.warning("sample %d: an image also appears in another split; dropped", d.index)
            dropped += 1
            continue
        seen.update(dict.fromkeys(hashes, d.split))
        samples.append(to_sample(d, cfg.seed, para, source))

    violations: dict[str, list[str]] = {}
    for split in by_split:
        rows = [
            {"answer_type": s.answer_type, "answer": s.answer, "n_images": len(s.images)}
            for s in samples
            if s.split == split
        ]
        v = balance_violations(rows)
        if v:
            log.warning("split %s is not balanced: %s", split, "; ".join(v))
            violations[split] = v
    return SynthResult(samples, dict(sorted(rejects.items())), violations, dropped)


def generator_info(cfg: SynthesizeConfig, result: SynthResult) -> dict[str, Any]:
    return {
        "name": "miva.synth",
        "seed": cfg.seed,
        "config": cfg.model_dump(mode="json"),
        "verifier_rejects": result.rejects,
        "balance_violations": result.violations,
        "dropped_shared_images": result.dropped_shared_images,
        "skipped_inputs": result.skipped,
    }
