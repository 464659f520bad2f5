"""MAT, the Multi-modal Agentic Tool benchmark of Visual-ARFT (Liu et al., 2025).

Release layout (the Hugging Face dataset `laolao77/MAT`, as the authors' evaluation
scripts in Visual-ARFT/evaluation_* read it):

    MAT/MAT-Benchmark/MAT-Search.json      MAT/MAT-Benchmark/MAT-Search-image/<image_path>
    MAT/MAT-Benchmark/MAT-Coding.json      MAT/MAT-Benchmark/MAT-Coding-image/<..._image_path>

The folder given may be `MAT`, `MAT-Benchmark` or the folder holding the JSON; images are
looked up in the `*-image/` folder beside the JSON first, then beside the JSON itself.

- MAT-Search (150 items: 75 simple, 75 hard): questions that need web knowledge about an
  image; the agent uses the `search` tool over the corpus the user provides
  (`agent.search.corpus`). Items: {`id`, `question`, `answer` (a string or a list of
  references), `image_path`[, `split`]}.
- MAT-Coding (200 items: 70 simple, 130 hard): questions about images degraded by
  rotation, blur, darkness, noise, crops...; the agent uses the `python` tool to repair
  the image. Items: {`id`, `question`, `answers` [...], `ori_image_path`,
  `processed_image_path`, `type` [...], `split`}. The model is shown the processed image,
  except for `crop` items (the question names a region of the original), which show the
  original, as the official evaluation does.

Metric: SQuAD F1 and EM, the max over the references, per item; averaged overall and per
split (simple / hard; by position, first 75 / 70 items, when an item has no `split`).
Chinese (CJK) text is tokenised per character (`cjk_spaced`).
"""

from __future__ import annotations

from abc import abstractmethod
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
    with_id,
)
from miva.data.schema import Sample
from miva.errors import DataError
from miva.scoring import cjk_spaced, exact_match, mean, per_group_means, token_f1


def references(raw: Any) -> list[str]:
    if isinstance(raw, str):
        refs = [raw]
    elif isinstance(raw, list | tuple):
        refs = [str(r) for r in raw if r is not None and str(r).strip()]
    else:
        raise ValueError(f"answer {raw!r} is neither text nor a list of texts")
    refs = [r for r in refs if r.strip()]
    if not refs:
        raise ValueError("no reference answer")
    return refs


def f1_em(prediction: str | None, refs: Sequence[str]) -> tuple[float, float]:
    """(max F1, max EM) over references, CJK per character.

    >>> f1_em("北京", ["北京市", "Beijing"])  # 2 shared of 2 predicted, 3 reference chars
    (0.8, 0.0)
    """
    if prediction is None or not prediction.strip():
        return 0.0, 0.0
    pred = cjk_spaced(prediction)
    spaced = [cjk_spaced(r) for r in refs]
    return token_f1(pred, spaced), exact_match(pred, spaced)


def _split_of(entry: dict, index: int, simple_count: int) -> str:
    for key in ("split", "level", "difficulty"):
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().lower()
    return "simple" if index < simple_count else "hard"


def _types(entry: dict) -> list[str]:
    kinds = entry.get("type")
    return [str(k) for k in kinds] if isinstance(kinds, list) else ([str(kinds)] if kinds else [])


class _Mat(Benchmark):
    metric = "f1"
    file_name: str
    image_folder: str  # the release's image folder beside the JSON
    answer_key: str
    simple_count: int  # the release lists its simple items first

    def find_json(self, folder: Path) -> Path:
        for candidate in (
            folder / self.file_name,
            folder / "MAT-Benchmark" / self.file_name,
            folder / "MAT" / "MAT-Benchmark" / self.file_name,
        ):
            if candidate.is_file():
                return candidate
        raise DataError(
            f"{folder}: no {self.file_name}; expected the release layout "
            f"MAT-Benchmark/{self.file_name} with images in MAT-Benchmark/{self.image_folder}/"
        )

    def convert(self, folder: Path, limit: int | None = None) -> Converted:
        path = self.find_json(folder)
        images = path.parent / self.image_folder
        image_root = images if images.is_dir() else path.parent
        entries = expect_list(load_json(path), path, f"{self.name} items")
        return convert_items(
            enumerate(entries),
            lambda i, entry: self._sample(entry, i, image_root),
            lambda i, entry: f"{self.file_name}[{i}]" + with_id(entry),
            limit,
        )

    @abstractmethod
    def image_key(self, entry: dict) -> str:
        """The field of an entry that names its image file."""

    def _sample(self, entry: Any, index: int, image_root: Path) -> Sample:
        require(entry, ["id", "question", self.answer_key])
        key = self.image_key(entry)
        require(entry, [key])
        refs = references(entry[self.answer_key])
        return self.test_sample(
            str(entry["id"]),
            {"references": refs, "types": _types(entry), "image_field": key},
            task=_split_of(entry, index, self.simple_count),
            images=[read_image_file(image_root, entry[key])],
            question=str(entry["question"]),
            answer_type="text",
            answer=refs if len(refs) > 1 else refs[0],
        )

    def score_item(self, sample: Sample, prediction: Any) -> ItemScore:
        text = None if prediction is None else str(prediction)
        f1, em = f1_em(text, sample.meta["references"])
        valid = text is not None and text.strip() != ""
        return ItemScore(sample.id, sample.task, f1, em >= 1.0, valid, {"f1": f1, "em": em})

    def aggregate(
        self,
        samples: Sequence[Sample],
        items: Sequence[ItemScore],
        predictions: Mapping[str, Any],
    ) -> dict[str, float]:
        tasks = [it.task for it in items]
        out: dict[str, float] = {}
        for key in ("f1", "em"):
            for task, value in per_group_means(tasks, [it.details[key] for it in items]).items():
                out[f"{task}/{key}"] = value
            out[f"overall/{key}"] = mean(it.details[key] for it in items)
        for task in dict.fromkeys(tasks):
            out[f"{task}/accuracy"] = out[f"{task}/em"]
        out["overall/accuracy"] = out["overall/em"]
        out["overall/invalid_rate"] = mean(0.0 if it.valid else 1.0 for it in items)
        out["overall/items"] = float(len(items))
        return out


class MatSearch(_Mat):
    name = "mat-search"
    title = "MAT-Search (Visual-ARFT): search-tool QA, max F1/EM over references"
    expects = (
        "<folder>/MAT-Benchmark/MAT-Search.json (list of {id, question, answer (text or list), "
        "image_path[, split]}) with images in MAT-Benchmark/MAT-Search-image/<image_path> "
        "(the release laolao77/MAT); the search corpus is agent.search.corpus (JSONL "
        "{id, text[, title]})"
    )
    tools = ("search",)
    file_name = "MAT-Search.json"
    image_folder = "MAT-Search-image"
    answer_key = "answer"
    simple_count = 75

    def image_key(self, entry: dict) -> str:
        return "image_path"


class MatCoding(_Mat):
    name = "mat-coding"
    title = "MAT-Coding (Visual-ARFT): python-tool QA on degraded images, max F1/EM"
    expects = (
        "<folder>/MAT-Benchmark/MAT-Coding.json (list of {id, question, answers[], "
        "ori_image_path, processed_image_path, type[], split}) with images in "
        "MAT-Benchmark/MAT-Coding-image/ (the release laolao77/MAT)"
    )
    tools = ("python",)
    file_name = "MAT-Coding.json"
    image_folder = "MAT-Coding-image"
    answer_key = "answers"
    simple_count = 70

    def image_key(self, entry: dict) -> str:
        # a crop question names a region of the original image: the official evaluation
        # shows the original for those, the processed (degraded) image otherwise
        types = _types(entry)
        return "ori_image_path" if types and types[0] == "crop" else "processed_image_path"
