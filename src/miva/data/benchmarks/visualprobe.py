"""VisualProbe (Lai et al., 2025, "Mini-o3"): visual search in high-resolution, cluttered
images with small targets; 500 test questions in three difficulty splits (easy, medium,
hard), short open answers ("white", "YE OLDE", "6570").

Native layout (the Hugging Face releases `Mini-o3/VisualProbe_Easy`, `.../VisualProbe_Medium`,
`.../VisualProbe_Hard`): one folder per split holding `val.json` and `data/` with the
images. `val.json` is a list of {`problem` (the question, with an `<image>` placeholder),
`images` [paths relative to the folder that holds the split folders, e.g.
"VisualProbe_Hard/data/visual_probe_hard_1.jpg"], `solution` (the reference answer)}, plus
optional `data_source` ("visual_probe_hard") and `doc_id`.
Confirmed against github.com/Mini-o3/Mini-o3 at 8654dbf (README.md: the
`${BASE_IMAGE_DIR}/VisualProbe_{Easy,Medium,Hard}/val.json` files; verl/utils/dataset/
multimodal_dataset.py: `problem`, `images` joined to BASE_IMAGE_DIR, `solution`;
verl/utils/reward_score/__init__.py: the `visual_probe_*` data sources) and the dataset
trees on huggingface.co (val.json + data/).

`<folder>` is the folder holding the split folders (any subset), or one split folder.

Metrics per split and overall: the release scores with a GPT judge, which cannot run
offline, so `accuracy` here is a rule-based stand-in: correct when the reference, after
SQuAD normalisation and with number words as digits, equals the answer or appears in it as
a contiguous run of words ("white" in "the lampshade is white"). `em` and `f1` (SQuAD) are
logged next to it. Compare with published numbers only as a rough guide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from miva.data.benchmarks.base import (
    Benchmark,
    Converted,
    ItemScore,
    convert_items,
    expect_list,
    load_json,
    read_image_file,
    require,
)
from miva.data.schema import Sample
from miva.errors import DataError
from miva.scoring import exact_match, mean, normalize_text, per_group_means, token_f1

SPLITS = ("easy", "medium", "hard")
_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
NUMBER_WORDS = {w: str(i) for i, w in enumerate(_WORDS.split(" "))}


def answer_words(text: str) -> list[str]:
    """SQuAD-normalised words with number words as digits.

    >>> answer_words("The Eight.")
    ['8']
    """
    return [NUMBER_WORDS.get(w, w) for w in normalize_text(text).split()]


def rule_match(prediction: str, reference: str) -> bool:
    """The reference's words equal the answer's or appear in it as a contiguous run.

    >>> rule_match("The lampshade is white.", "White")
    True
    >>> rule_match("black", "black and white")
    False
    """
    pred, ref = answer_words(prediction), answer_words(reference)
    if not ref:
        return not pred
    n = len(ref)
    return any(pred[i : i + n] == ref for i in range(len(pred) - n + 1))


def split_of(folder_name: str, data_source: Any = None) -> str:
    """'VisualProbe_Hard' or data_source 'visual_probe_hard' -> 'hard'."""
    for text in (str(data_source or ""), folder_name):
        tail = text.lower().rsplit("_", 1)[-1]
        if tail in SPLITS:
            return tail
    raise ValueError(f"cannot tell the split (easy/medium/hard) of {folder_name!r}")


class VisualProbe(Benchmark):
    name = "visualprobe"
    title = "VisualProbe (Mini-o3): visual search, easy/medium/hard, rule-based accuracy"
    expects = (
        "<folder>/VisualProbe_{Easy,Medium,Hard}/val.json (list of {problem, images[], "
        "solution}) with the images at the paths listed (relative to <folder>), as in the HF "
        "releases Mini-o3/VisualProbe_*; or one such split folder"
    )
    metric = "accuracy"

    def convert(self, folder: Path, limit: int | None = None) -> Converted:
        split_dirs = (
            [folder]
            if (folder / "val.json").is_file()
            else sorted(d for d in folder.glob("VisualProbe_*") if (d / "val.json").is_file())
        )
        if not split_dirs:
            raise DataError(
                f"{folder}: no val.json and no VisualProbe_*/val.json; expected {self.expects}"
            )
        items = (
            (split_dir, i, entry)
            for split_dir in split_dirs
            for i, entry in enumerate(
                expect_list(load_json(split_dir / "val.json"), split_dir / "val.json", "items")
            )
        )
        return convert_items(
            items,
            self._sample,
            lambda split_dir, i, _: f"{split_dir.name}/val.json[{i}]",
            limit,
        )

    def _sample(self, split_dir: Path, i: int, entry: Any) -> Sample:
        require(entry, ["problem", "images", "solution"])
        split = split_of(split_dir.name, entry.get("data_source"))
        paths = [str(p) for p in entry["images"]]
        if not paths:
            raise ValueError("images is empty")
        images = [_read_probe_image(split_dir, p) for p in paths]
        question = str(entry["problem"]).replace("<image>", "").strip()
        if not question:
            raise ValueError("problem is empty")
        native = str(entry.get("doc_id", f"{split_dir.name}/{i}"))
        return self.test_sample(
            native,
            {"split_name": split, "image_paths": paths},
            task=split,
            images=images,
            question=question,
            answer_type="text",
            answer=str(entry["solution"]),
        )

    def score_item(self, sample: Sample, prediction: Any) -> ItemScore:
        text = "" if prediction is None else str(prediction)
        valid = text.strip() != ""
        hit = valid and rule_match(text, str(sample.answer))
        details = {
            "em": exact_match(text, sample.answer) if valid else 0.0,
            "f1": token_f1(text, sample.answer) if valid else 0.0,
        }
        return ItemScore(sample.id, sample.task, float(hit), hit, valid, details)

    def aggregate(
        self,
        samples: Sequence[Sample],
        items: Sequence[ItemScore],
        predictions: Mapping[str, Any],
    ) -> dict[str, float]:
        tasks = [it.task for it in items]
        out: dict[str, float] = {}
        for task, value in per_group_means(tasks, [it.score for it in items]).items():
            out[f"{task}/accuracy"] = value
        for key in ("em", "f1"):
            for task, value in per_group_means(tasks, [it.details[key] for it in items]).items():
                out[f"{task}/{key}"] = value
            out[f"overall/{key}"] = mean(it.details[key] for it in items)
        out["overall/accuracy"] = mean(it.score for it in items)
        out["overall/invalid_rate"] = mean(0.0 if it.valid else 1.0 for it in items)
        out["overall/items"] = float(len(items))
        return out


def _read_probe_image(split_dir: Path, rel: str) -> bytes:
    """Paths are relative to the folder holding the split folders; accept the split folder
    itself too ("data/x.jpg" or "VisualProbe_Hard/data/x.jpg")."""
    parts = Path(rel.removeprefix("./")).parts
    for base, candidate in (
        (split_dir.parent, rel),
        (split_dir, rel),
        (split_dir, str(Path(*parts[1:])) if len(parts) > 1 else rel),
    ):
        try:
            return read_image_file(base, candidate)
        except FileNotFoundError:
            continue
    raise FileNotFoundError(f"image file {rel} not found under {split_dir} or its parent")
