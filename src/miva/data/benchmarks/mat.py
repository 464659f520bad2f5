"""MAT, the Multi-modal Agentic Tool benchmark of Visual-ARFT (Liu et al., 2025).

- MAT-Search (150 items: 75 simple, 75 hard): questions that need web knowledge about an
  image; the agent uses the `search` tool over the corpus the user provides
  (`agent.search.corpus`). Native: `MAT-Search.json`, a list of {`id`, `question`,
  `answer` (a string or a list of references), `image_path`[, `split`/`type`]}.
- MAT-Coding (200 items: 70 simple, 130 hard): questions about images degraded by
  rotation, blur, darkness, noise, crops...; the agent uses the `python` tool to repair
  the image. Native: `MAT-Coding.json`, a list of {`id`, `question`, `answers` [...],
  `ori_image_path`, `processed_image_path`, `type` [...], `split`}; the model is shown the
  processed image.

Metric: SQuAD F1 and EM, the max over the references, per item; averaged overall and per
split (simple / hard). Chinese (CJK) text is tokenised per character (`cjk_spaced`).
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


def _split_of(entry: dict) -> str:
    for key in ("split", "level", "difficulty"):
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().lower()
    return "all"


class _Mat(Benchmark):
    metric = "f1"
    file_name: str
    answer_key: str
    image_key: str

    def convert(self, folder: Path, limit: int | None = None) -> Converted:
        path = folder / self.file_name
        if not path.is_file():
            raise DataError(f"{path}: missing; expected {self.file_name} in {folder}")
        entries = expect_list(load_json(path), path, f"{self.name} items")
        return convert_items(
            enumerate(entries),
            lambda _, entry: self._sample(entry, folder),
            lambda i, entry: f"{self.file_name}[{i}]" + with_id(entry),
            limit,
        )

    def _sample(self, entry: Any, folder: Path) -> Sample:
        require(entry, ["id", "question", self.answer_key, self.image_key])
        refs = references(entry[self.answer_key])
        split = _split_of(entry)
        kinds = entry.get("type")
        return self.test_sample(
            str(entry["id"]),
            {
                "references": refs,
                "types": list(kinds) if isinstance(kinds, list) else ([kinds] if kinds else []),
            },
            task=split,
            images=[read_image_file(folder, entry[self.image_key])],
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
        "<folder>/MAT-Search.json (list of {id, question, answer (text or list), image_path"
        "[, split]}) and the images at <folder>/<image_path>; the search corpus is "
        "agent.search.corpus (JSONL {id, text[, title]})"
    )
    tools = ("search",)
    file_name = "MAT-Search.json"
    answer_key = "answer"
    image_key = "image_path"


class MatCoding(_Mat):
    name = "mat-coding"
    title = "MAT-Coding (Visual-ARFT): python-tool QA on degraded images, max F1/EM"
    expects = (
        "<folder>/MAT-Coding.json (list of {id, question, answers[], ori_image_path, "
        "processed_image_path, type[], split}) and the images at <folder>/<processed_image_path>"
    )
    tools = ("python",)
    file_name = "MAT-Coding.json"
    answer_key = "answers"
    image_key = "processed_image_path"
