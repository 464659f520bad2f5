"""Per-row checks that great-expectations cannot express, and the cross-row checks.

`inspect_row` turns one raw parquet row into (a) one row of the metadata table that the
GX suite checks (no image bytes; answer fields flattened into plain columns) and (b) the
reasons this row fails the checks that need the images or Python parsing: every image
decodes fully, decoded sizes match `meta["image_sizes"]` when recorded, evidence boxes
name an existing image and lie inside it, the row converts to a `Sample`.

Cross-row checks work on the rows still clean after those: `shared_images` (an image,
compared by a hash of its decoded pixels, appearing in two splits) and `near_duplicates`
(questions over identical images whose character-shingle Jaccard similarity reaches the
threshold). Each returns row -> reason for the rows to quarantine; the row it collides
with is kept.

Reasons are strings `"<rule>: <detail>"`; the rule name before the colon is what the
report counts.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from miva.data.schema import CHOICE_LETTERS, SPLITS, Sample

# The last bytes of a complete file: PNG's IEND chunk, JPEG's EOI marker.
_END_MARKERS = {"PNG": b"IEND\xaeB`\x82", "JPEG": b"\xff\xd9"}
EPS = 1e-3  # float32 boxes: tolerate rounding at the image border
# Which split keeps an image that two splits share: evaluation splits win.
SPLIT_PRIORITY = {"test": 0, "val": 1, "train": 2}

ROW_RULES = (
    "column_types",
    "row_parses",
    "images_decode",
    "image_sizes_match",
    "evidence_in_bounds",
)
CROSS_RULES = ("image_shared_between_splits", "near_duplicate_question")


@dataclass
class RowInfo:
    """What pass one learns about a row: its metadata-table row and its failures."""

    meta: dict[str, Any]
    reasons: list[str] = field(default_factory=list)
    image_keys: list[str | None] = field(default_factory=list)  # pixel hash per image

    def fail(self, rule: str, detail: str) -> None:
        self.reasons.append(f"{rule}: {detail}")


def rule_of(reason: str) -> str:
    return reason.split(":", 1)[0]


# ---------------------------------------------------------------------------- images


def decode_image(blob: bytes) -> tuple[tuple[int, int], str]:
    """Decode an encoded image completely; returns ((width, height), pixel hash).

    Raises ValueError with a short message when the bytes are not a whole image: `load`
    decodes every pixel, so truncated or corrupted data fails (zlib's checksum guards PNG
    data; a second `verify` pass would double the cost for little more). The hash covers
    mode, size and decoded pixels, so a PNG and a lossless re-encoding of the same
    picture collide (what the split-leak check wants).
    """
    if not isinstance(blob, bytes | bytearray) or not blob:
        raise ValueError("no image bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(blob)) as im:
                im.load()
                end = _END_MARKERS.get(im.format or "")
                if end and not bytes(blob[-16:]).rstrip(b"\0").endswith(end):
                    raise ValueError(f"{im.format} is truncated (no end marker)")
                h = hashlib.blake2b(im.tobytes(), digest_size=12)
                h.update(f"{im.mode}{im.size}".encode())
                return im.size, h.hexdigest()
    except Exception as exc:  # decoders of untrusted bytes raise many types
        raise ValueError(f"{type(exc).__name__}: {exc}") from None


# ---------------------------------------------------------------------------- answers


def answer_kind(value: Any) -> str:
    """The shape of a parsed answer, matched against answer_type by the GX suite.

    >>> [answer_kind(v) for v in ["A", 3, 2.5, [0, 0, 4, 4], {"image": 1, "bbox": [0, 0, 1, 1]}]]
    ['str', 'int', 'float', 'box', 'image_box']
    >>> answer_kind(True), answer_kind([1, 2]), answer_kind(float("nan"))
    ('bool', 'list', 'nonfinite')
    """
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "str"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float" if math.isfinite(value) else "nonfinite"
    if isinstance(value, list):
        return "box" if _is_box(value) else "list"
    if isinstance(value, dict):
        ok = (
            set(value) == {"image", "bbox"}
            and answer_kind(value["image"]) == "int"
            and _is_box(value["bbox"])
        )
        return "image_box" if ok else "dict"
    return "null" if value is None else type(value).__name__


def _is_box(v: Any) -> bool:
    return (
        isinstance(v, list)
        and len(v) == 4
        and all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in v
        )
    )


def box_problem(box: Any, size: tuple[int, int] | None) -> str | None:
    """Why a pixel xyxy box is not well formed and inside an image of `size` (None if fine).

    >>> box_problem([0, 0, 10, 10], (10, 10)) is None
    True
    >>> box_problem([5, 0, 2, 4], (10, 10))
    'x2 <= x1'
    >>> box_problem([0, 0, 11, 4], (10, 10))
    'outside the 10x10 image'
    """
    if not _is_box(box):
        return "not four finite numbers"
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 <= x1:
        return "x2 <= x1"
    if y2 <= y1:
        return "y2 <= y1"
    if size is not None:
        w, h = size
        if x1 < -EPS or y1 < -EPS or x2 > w + EPS or y2 > h + EPS:
            return f"outside the {w}x{h} image"
    return None


# ---------------------------------------------------------------------------- one row


def inspect_row(raw: dict[str, Any], bad_columns: dict[str, str]) -> RowInfo:
    """Pass one over a row: the metadata-table row plus the reasons it fails row checks."""
    val = {c: (None if c in bad_columns else raw.get(c)) for c in raw}
    info = RowInfo(
        meta={
            "id": val.get("id"),
            "task": val.get("task"),
            "source": val.get("source"),
            "split": val.get("split"),
            "question": val.get("question"),
            "answer_type": val.get("answer_type"),
            "answer": val.get("answer"),
        }
    )
    for col, why in bad_columns.items():
        info.fail("column_types", f"{col}: {why}")

    # images: decode each, keep sizes and pixel hashes
    images = val.get("images")
    sizes: list[tuple[int, int] | None] = []
    if isinstance(images, list):
        for k, img in enumerate(images, start=1):
            blob = img.get("bytes") if isinstance(img, dict) else img
            try:
                size, key = decode_image(blob)
            except ValueError as exc:
                info.fail("images_decode", f"image {k}: {exc}")
                sizes.append(None)
                info.image_keys.append(None)
                continue
            sizes.append(size)
            info.image_keys.append(key)
    info.meta["n_images"] = len(images) if isinstance(images, list) else None

    meta = _parse_meta(val.get("meta"), info)
    _check_recorded_sizes(meta, sizes, info)

    choices = val.get("choices")
    info.meta["n_choices"] = len(choices) if isinstance(choices, list) else 0

    evidence = val.get("evidence") if isinstance(val.get("evidence"), list) else []
    for j, ev in enumerate(evidence, start=1):
        problem = _evidence_problem(ev, sizes)
        if problem:
            info.fail("evidence_in_bounds", f"evidence {j}: {problem}")

    _flatten_answer(val.get("answer"), val.get("answer_type"), evidence, sizes, info.meta)

    if not bad_columns:
        try:
            Sample.from_row(raw)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            info.fail("row_parses", f"not a valid Sample ({type(exc).__name__}: {exc})")
    return info


def _parse_meta(text: Any, info: RowInfo) -> dict[str, Any]:
    if text is None or text == "":
        return {}
    try:
        meta = json.loads(text)
    except (TypeError, ValueError):
        info.fail("row_parses", "meta is not JSON")
        return {}
    if not isinstance(meta, dict):
        info.fail("row_parses", "meta is not a JSON object")
        return {}
    return meta


def _check_recorded_sizes(
    meta: dict[str, Any], sizes: list[tuple[int, int] | None], info: RowInfo
) -> None:
    recorded = meta.get("image_sizes")
    if recorded is None:
        return
    if not isinstance(recorded, list) or len(recorded) != len(sizes):
        info.fail(
            "image_sizes_match",
            f"meta.image_sizes has {len(recorded) if isinstance(recorded, list) else 'no list of'} "
            f"entries for {len(sizes)} images",
        )
        return
    for k, (rec, got) in enumerate(zip(recorded, sizes, strict=True), start=1):
        if got is None:
            continue  # already reported by images_decode
        if not (isinstance(rec, list | tuple) and len(rec) == 2 and tuple(rec) == got):
            info.fail("image_sizes_match", f"image {k}: recorded {rec}, decoded {got[0]}x{got[1]}")


def _evidence_problem(ev: Any, sizes: list[tuple[int, int] | None]) -> str | None:
    if not isinstance(ev, dict):
        return "not an {image, bbox} object"
    k = ev.get("image")
    if not isinstance(k, int) or not 1 <= k <= len(sizes):
        return f"image {k} does not exist (row has {len(sizes)} images, 1-based)"
    problem = box_problem(ev.get("bbox"), sizes[k - 1])
    return f"box {ev.get('bbox')} in image {k}: {problem}" if problem else None


def _flatten_answer(
    text: Any,
    answer_type: Any,
    evidence: list[Any],
    sizes: list[tuple[int, int] | None],
    out: dict[str, Any],
) -> None:
    """Answer columns of the metadata table (all None when they do not apply)."""
    out.update(
        answer_kind=None,
        answer_text=None,
        answer_choice_pos=None,
        answer_image=None,
        box_x1=None,
        box_y1=None,
        box_x2=None,
        box_y2=None,
        box_img_w=None,
        box_img_h=None,
    )
    if text is None:
        return
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        out["answer_kind"] = "invalid_json"
        return
    kind = answer_kind(value)
    out["answer_kind"] = kind
    if kind == "str":
        out["answer_text"] = value
        if len(value) == 1 and value in CHOICE_LETTERS:
            out["answer_choice_pos"] = CHOICE_LETTERS.index(value)
    if kind == "int":
        out["answer_image"] = value if answer_type == "image_index" else None
    box, image = None, None
    if kind == "box":
        # A plain bbox answer refers to the image of the first evidence entry, else image 1.
        box = value
        first = evidence[0] if evidence and isinstance(evidence[0], dict) else {}
        image = first.get("image") if isinstance(first.get("image"), int) else 1
    elif kind == "image_box":
        box, image = value["bbox"], value["image"]
        out["answer_image"] = image
    if box is not None:
        out.update(box_x1=box[0], box_y1=box[1], box_x2=box[2], box_y2=box[3])
        if isinstance(image, int) and 1 <= image <= len(sizes) and sizes[image - 1]:
            out["box_img_w"], out["box_img_h"] = sizes[image - 1]


# ---------------------------------------------------------------------------- cross-row


def shared_images(rows: Iterable[tuple[int, str, list[str | None]]]) -> dict[int, str]:
    """Rows whose image also appears in a split that takes precedence (test > val > train).

    `rows` are (row, split, image keys). Each shared image stays with its highest-priority
    split; rows of the other splits that use it are returned with the reason.
    """
    rows = list(rows)
    owner: dict[str, str] = {}
    for _, split, keys in rows:
        for key in keys:
            if key is None:
                continue
            if key not in owner or _priority(split) < _priority(owner[key]):
                owner[key] = split
    out: dict[int, str] = {}
    for row, split, keys in rows:
        others = sorted({owner[k] for k in keys if k is not None and owner[k] != split})
        if others:
            out[row] = (
                f"image_shared_between_splits: an image of this {split} row is also in {', '.join(others)}"
            )
    return out


def _priority(split: str) -> int:
    return SPLIT_PRIORITY.get(split, len(SPLITS) + 1)


def shingles(text: str, n: int = 5) -> frozenset[str]:
    """Character n-grams of the normalised text (lower case, punctuation to spaces).

    >>> sorted(shingles("Ab, c!", n=3))
    ['ab ', 'b c']
    """
    norm = " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())
    if len(norm) <= n:
        return frozenset([norm])
    return frozenset(norm[i : i + n] for i in range(len(norm) - n + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a & b| / |a | b|.

    >>> jaccard(frozenset("abc"), frozenset("bcd"))
    0.5
    """
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def near_duplicates(
    rows: Iterable[tuple[int, str, tuple[str | None, ...], str]], threshold: float
) -> dict[int, str]:
    """Rows whose question nearly repeats an earlier kept row's over the same images.

    `rows` are (row, label, image keys, question) in dataset order; the label (e.g. the
    id and file position) names the kept row in the reason. Only rows with identical
    images (same keys, same order) are compared. Exact for Jaccard >= threshold: prefix
    filtering (two sets with Jaccard >= t share a token among the first
    |A| - ceil(t|A|) + 1 tokens of each, tokens ordered rarest first) finds the
    candidates without comparing every pair of a large group.
    """
    groups: dict[tuple[str | None, ...], list[tuple[int, str, str]]] = defaultdict(list)
    for row, label, keys, question in rows:
        groups[keys].append((row, label, question))
    out: dict[int, str] = {}
    for members in groups.values():
        if len(members) > 1:
            out.update(_near_duplicates_in_group(members, threshold))
    return out


def _near_duplicates_in_group(
    members: list[tuple[int, str, str]], threshold: float
) -> dict[int, str]:
    sets = [(row, label, shingles(q)) for row, label, q in members]
    freq: Counter[str] = Counter(tok for *_, toks in sets for tok in toks)
    index: dict[str, list[int]] = defaultdict(list)  # prefix token -> kept positions
    kept: dict[int, tuple[str, frozenset[str]]] = {}
    out: dict[int, str] = {}
    for pos, (row, label, toks) in enumerate(sets):
        ordered = sorted(toks, key=lambda t: (freq[t], t))
        prefix = ordered[: len(ordered) - math.ceil(threshold * len(ordered) - 1e-9) + 1]
        seen: set[int] = set()
        match = None
        for other in (o for tok in prefix for o in index.get(tok, ())):
            if other in seen:
                continue
            seen.add(other)
            sim = jaccard(toks, kept[other][1])
            if sim >= threshold:
                match = (kept[other][0], sim)
                break
        if match:
            out[row] = (
                f"near_duplicate_question: Jaccard {match[1]:.2f} with {match[0]} (kept) "
                "over the same images"
            )
            continue
        kept[pos] = (label, toks)
        for tok in prefix:
            index[tok].append(pos)
    return out
