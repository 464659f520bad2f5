"""COCO-format detection datasets as a second source: users bring their own images.

Input: a folder holding an instances JSON (`annotations/instances_*.json`, or the one
`*.json` in the folder) and the image files (under `images/`, next to the JSON, or in
the folder itself), or the path of the JSON directly. From the real boxes it builds the
task families that need no synthetic attributes: counting a category across images,
which image contains X (selection), box of X in image k (grounding) and which image and
where (group grounding), with the same solver, verifier and balancing as the scenes.

Bad input never ends in a traceback: an unreadable JSON raises `DataError` naming the
file; a dangling image id, an unknown category id or a missing image file is skipped with
a logged reason naming the file and the id (or raises `DataError` with `coco_strict`).
Images are split between train/val/test before any sample is built, so no image is
shared across splits.
"""

from __future__ import annotations

import io
import json
import logging
import random
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from miva.config import SynthesizeConfig
from miva.data.synth.coco_scene import CocoImage, CocoObj, CocoScene
from miva.data.synth.generate import (
    MAX_ATTEMPTS,
    Draft,
    SynthResult,
    finish,
    iter_drafts,
    sample_seed,
    split_plan,
)
from miva.data.synth.questions import TEMPLATES
from miva.data.synth.solver import solve
from miva.data.synth.verifier import verify
from miva.errors import DataError

log = logging.getLogger(__name__)
COCO_TASKS = ("counting", "selection", "grounding", "group_grounding")
MAX_COUNT = 12


@dataclass
class CocoIndex:
    images: list[CocoImage]  # boxes in original pixels
    paths: dict[int, Path]
    annotation_file: Path
    skipped: list[str]


# ------------------------------------------------------------------------ loading


def find_annotation_file(source: Path) -> Path:
    if source.is_file():
        return source
    if not source.is_dir():
        raise DataError(f"{source}: no such COCO folder or annotation file")
    candidates = sorted(source.glob("annotations/instances*.json")) or sorted(
        source.glob("instances*.json")
    )
    if not candidates:
        candidates = sorted(source.glob("*.json")) + sorted(source.glob("annotations/*.json"))
    if len(candidates) != 1:
        raise DataError(
            f"{source}: expected one COCO instances JSON (annotations/instances_*.json or *.json), "
            f"found {[str(c) for c in candidates] or 'none'}"
        )
    return candidates[0]


def _image_path(ann_file: Path, root: Path, file_name: str) -> Path | None:
    for base in (root / "images", root, ann_file.parent, ann_file.parent.parent / "images"):
        p = base / file_name
        if p.is_file():
            return p
    return None


def load_coco(source: str | Path, strict: bool = False) -> CocoIndex:
    """Read and check a COCO instances file; skipped entries are logged and listed."""
    root = Path(source)
    ann_file = find_annotation_file(root)
    root = root if root.is_dir() else ann_file.parent
    try:
        raw = json.loads(ann_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{ann_file}: not a readable COCO JSON ({exc})") from exc
    for key in ("images", "annotations", "categories"):
        if not isinstance(raw, dict) or not isinstance(raw.get(key), list):
            raise DataError(f"{ann_file}: missing the {key!r} list of a COCO instances file")

    skipped: list[str] = []

    def problem(msg: str) -> None:
        text = f"{ann_file}: {msg}"
        if strict:
            raise DataError(text)
        log.warning("%s; skipped", text)
        skipped.append(msg)

    try:
        categories = {int(c["id"]): str(c["name"]) for c in raw["categories"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"{ann_file}: a category lacks an integer 'id' or a 'name' ({exc!r})"
        ) from exc
    images: dict[int, CocoImage] = {}
    paths: dict[int, Path] = {}
    for i, im in enumerate(raw["images"]):
        try:
            image_id, file_name = int(im["id"]), str(im["file_name"])
            width, height = int(im["width"]), int(im["height"])
        except (KeyError, TypeError, ValueError) as exc:
            problem(f"images[{i}] lacks id/file_name/width/height ({exc!r})")
            continue
        path = _image_path(ann_file, root, file_name)
        if path is None:
            problem(f"image id {image_id}: file {file_name!r} not found under {root}")
            continue
        images[image_id] = CocoImage(image_id, file_name, width, height)
        paths[image_id] = path
    for i, ann in enumerate(raw["annotations"]):
        try:
            ann_id = ann.get("id", i)
            image_id, cat_id = int(ann["image_id"]), int(ann["category_id"])
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError) as exc:
            problem(f"annotation {i} lacks image_id/category_id/bbox ({exc!r})")
            continue
        if image_id not in images:
            if any(f"image id {image_id}:" in s for s in skipped):
                continue  # its image was already skipped (missing file), with a reason
            problem(f"annotation {ann_id}: dangling image id {image_id} (no such image)")
            continue
        if cat_id not in categories:
            problem(f"annotation {ann_id}: unknown category id {cat_id}")
            continue
        images[image_id].objects.append(
            CocoObj(categories[cat_id], [x, y, x + w, y + h], bool(ann.get("iscrowd", 0)))
        )
    if not images:
        raise DataError(f"{ann_file}: no usable images ({len(skipped)} skipped)")
    ordered = [images[k] for k in sorted(images)]
    return CocoIndex(ordered, paths, ann_file, skipped)


def split_images(
    index: CocoIndex, splits: dict[str, float], seed: int
) -> dict[str, list[CocoImage]]:
    """Disjoint image pools per split (exact fractions of the images, seeded shuffle)."""
    labels = split_plan(len(index.images), splits, seed + 7919)
    pools: dict[str, list[CocoImage]] = {s: [] for s in splits}
    for im, split in zip(index.images, labels, strict=True):
        pools[split].append(im)
    return pools


# ------------------------------------------------------------------------ items


def _scaled(im: CocoImage, size: int) -> CocoImage:
    scale = size / max(im.width, im.height)
    w, h = max(1, round(im.width * scale)), max(1, round(im.height * scale))
    objs = [CocoObj(o.category, [round(v * scale, 1) for v in o.bbox], o.crowd) for o in im.objects]
    return CocoImage(im.image_id, im.file, w, h, objs)


def _cats(im: CocoImage) -> Counter[str]:
    return Counter(o.category for o in im.objects)


@dataclass
class CocoJob:
    seed: int
    tasks: tuple[str, ...]
    images_per_sample: tuple[int, int]
    image_size: int
    min_side_fraction: float
    pools: dict[str, list[CocoImage]]
    paths: dict[int, Path]

    def __post_init__(self) -> None:
        self._cache: OrderedDict[int, bytes] = OrderedDict()

    def encode(self, im: CocoImage) -> bytes:
        if im.image_id in self._cache:
            return self._cache[im.image_id]
        path = self.paths[im.image_id]
        try:
            with Image.open(path) as img:
                rgb = img.convert("RGB").resize((im.width, im.height), Image.Resampling.BILINEAR)
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"{path}: cannot read image id {im.image_id} ({exc})") from exc
        buf = io.BytesIO()
        rgb.save(buf, format="JPEG", quality=90)
        self._cache[im.image_id] = buf.getvalue()
        if len(self._cache) > 256:
            self._cache.popitem(last=False)
        return self._cache[im.image_id]

    def __call__(self, index: int, split: str) -> Draft:
        task = self.tasks[index % len(self.tasks)]
        pool = self.pools[split]
        rejects: Counter[str] = Counter()
        lo, hi = self.images_per_sample
        for attempt in range(MAX_ATTEMPTS):
            rng = random.Random(sample_seed(self.seed, index, attempt))
            n = min(rng.randint(lo, hi), len(pool))
            if n < 2:
                raise DataError(
                    f"split {split!r} has {len(pool)} COCO image(s); a sample needs at least 2"
                )
            built = self._write(task, rng, pool, n)
            if built is None:
                rejects["no_candidate"] += 1
                continue
            scene, query, tid, stem, answer_type = built
            solution = solve(scene, query)  # type: ignore[arg-type]
            smallest = min(min(im.width, im.height) for im in scene.images)
            reasons = verify(task, solution, smallest, self.min_side_fraction)
            if any(o.crowd for _, o in scene.matches(query["target"])):
                reasons.append("ambiguous: a crowd annotation has no countable instances")
            if reasons:
                rejects[reasons[0].split(":")[0]] += 1
                continue
            return Draft(
                index=index,
                task=task,
                split=split,
                scene=scene.to_dict(),
                query=query,
                answer_type=answer_type,
                template=tid,
                stem=stem,
                options=None,
                value=solution.value,
                evidence=solution.evidence,
                images=[self.encode(im) for im in scene.images],
                captions=[_caption(im) for im in scene.images],
                attempts=attempt + 1,
                rejects=dict(rejects),
            )
        raise DataError(
            f"COCO sample {index} ({task}, split {split}): no valid item after {MAX_ATTEMPTS} "
            f"attempts ({dict(rejects)}); the images may not support this task"
        )

    def _write(self, task: str, rng: random.Random, pool: list[CocoImage], n: int):
        if task == "counting":
            chosen = rng.sample(pool, n)
            per = [_cats(im) for im in chosen]
            cands = sorted(
                c
                for c in set().union(*per)
                if sum(p[c] > 0 for p in per) >= 2 and sum(p[c] for p in per) <= MAX_COUNT
            )
            if not cands:
                return None
            cat = rng.choice(cands)
            tmpl = "counting"
            fields = {"plural": f"'{cat}' objects", "n": n}
            answer_type = "number"
            query = {"task": task, "target": {"category": cat}}
        else:
            unique = task in ("grounding", "group_grounding")
            holder = rng.choice(pool)
            counts = _cats(holder)
            cands = sorted(c for c, k in counts.items() if (k == 1 or not unique))
            if not cands:
                return None
            cat = rng.choice(cands)
            others = [im for im in pool if im is not holder and cat not in _cats(im)]
            if task == "grounding":  # the other images may hold the category too
                others = [im for im in pool if im is not holder]
            if len(others) < n - 1:
                return None
            chosen = rng.sample(others, n - 1)
            chosen.insert(rng.randrange(n), holder)
            k = chosen.index(holder) + 1
            desc = f"'{cat}'"
            if task == "selection":
                tmpl, answer_type = "selection", "image_index"
                query = {"task": task, "target": {"category": cat}}
                fields = {"desc": desc, "n": n}
            elif task == "grounding":
                tmpl, answer_type = "grounding", "bbox"
                query = {"task": task, "image": k, "target": {"category": cat}}
                fields = {"desc": desc, "k": k}
            else:
                tmpl, answer_type = "group_grounding", "image_bbox"
                query = {"task": task, "target": {"category": cat}}
                fields = {"desc": desc, "n": n}
        i = rng.randrange(len(TEMPLATES[tmpl]))
        stem = TEMPLATES[tmpl][i].format(**fields)
        scene = CocoScene([_scaled(im, self.image_size) for im in chosen])
        return scene, query, f"coco/{tmpl}#{i}", stem, answer_type


def _caption(im: CocoImage) -> str:
    counts = _cats(im)
    if not counts:
        return "a photo with no annotated objects"
    return "a photo with " + ", ".join(f"{k} {c}" for c, k in sorted(counts.items()))


def synthesize_coco(cfg: SynthesizeConfig, progress: bool = True) -> SynthResult:
    """Build `cfg.n` samples from the COCO folder `cfg.coco_path`."""
    assert cfg.coco_path is not None
    index = load_coco(cfg.coco_path, strict=cfg.coco_strict)
    tasks = tuple(t for t in cfg.tasks if t in COCO_TASKS)
    ignored = [t for t in cfg.tasks if t not in COCO_TASKS]
    if ignored:
        log.warning("COCO source builds %s only; ignoring task(s) %s", list(COCO_TASKS), ignored)
    if not tasks:
        raise DataError(
            f"{index.annotation_file}: none of data.tasks {cfg.tasks} can be built from COCO "
            f"annotations; use some of {list(COCO_TASKS)}"
        )
    pools = split_images(index, cfg.splits, cfg.seed)
    job = CocoJob(
        seed=cfg.seed,
        tasks=tasks,
        images_per_sample=tuple(cfg.images_per_sample),  # type: ignore[arg-type]
        image_size=cfg.image_size,
        min_side_fraction=cfg.min_target_side_fraction,
        pools=pools,
        paths=index.paths,
    )
    splits = split_plan(cfg.n, cfg.splits, cfg.seed)
    drafts = list(iter_drafts(job, splits, cfg.workers, progress))
    result = finish(drafts, cfg, progress, source="coco")
    result.rejects["coco_skipped"] = len(index.skipped)
    result.skipped = index.skipped
    return result
