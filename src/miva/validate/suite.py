"""The great-expectations 1.x suites: one over the metadata table, one over answer balance.

The metadata table has one row per dataset row (no image bytes) with the answer
flattened into plain columns by `rows.inspect_row`, and a `row` column that GX returns
in every unexpected-index list, so each failing row is quarantined with the name of the
expectation it broke. Every expectation carries ``meta={"rule": name}``; `RULES` lists
them with what they catch (the README's rules table uses the same words).

great_expectations is imported inside `GxRunner` only: the import takes seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from miva.config import TASKS, ValidateConfig
from miva.data.schema import ANSWER_TYPES, CHOICE_LETTERS, SPLITS

# answer_type -> answer shapes (rows.answer_kind) it accepts
ANSWER_SHAPES = {
    "choice": ("str",),
    "text": ("str",),
    "number": ("int", "float"),
    "image_index": ("int",),
    "bbox": ("box",),
    "image_bbox": ("image_box",),
}


@dataclass(frozen=True)
class GxRule:
    name: str
    frame: str  # "rows" or "balance"
    description: str
    build: Callable[[Any, Any, ValidateConfig], Any]  # (gx, Column, cfg) -> Expectation


def _e(gx: Any) -> Any:
    return gx.expectations


def _rules() -> list[GxRule]:
    def not_null(col: str, name: str) -> GxRule:
        return GxRule(
            f"{name}_not_null",
            "rows",
            f"`{name}` is present",
            lambda gx, C, cfg: _e(gx).ExpectColumnValuesToNotBeNull(column=col),
        )

    choice = "choice"
    rules = [
        GxRule(
            "ids_unique",
            "rows",
            "no two rows share an id (the first occurrence is kept)",
            lambda gx, C, cfg: _e(gx).ExpectColumnValuesToBeUnique(column="id"),
        ),
        *(
            not_null(c, c.removeprefix("n_"))
            for c in ("id", "task", "question", "answer_type", "answer", "split", "n_images")
        ),
        GxRule(
            "task_known",
            "rows",
            "task is a known family (or in validate.extra_tasks)",
            lambda gx, C, cfg: _e(gx).ExpectColumnValuesToBeInSet(
                column="task", value_set=[*TASKS, *cfg.extra_tasks]
            ),
        ),
        GxRule(
            "answer_type_known",
            "rows",
            f"answer_type is one of {', '.join(ANSWER_TYPES)}",
            lambda gx, C, cfg: _e(gx).ExpectColumnValuesToBeInSet(
                column="answer_type", value_set=list(ANSWER_TYPES)
            ),
        ),
        GxRule(
            "split_known",
            "rows",
            f"split is one of {', '.join(SPLITS)}",
            lambda gx, C, cfg: _e(gx).ExpectColumnValuesToBeInSet(
                column="split", value_set=list(SPLITS)
            ),
        ),
        GxRule(
            "question_length",
            "rows",
            "question length within validate.question_chars",
            lambda gx, C, cfg: _e(gx).ExpectColumnValueLengthsToBeBetween(
                column="question", min_value=cfg.question_chars[0], max_value=cfg.question_chars[1]
            ),
        ),
        GxRule(
            "image_count",
            "rows",
            "number of images within validate.image_count",
            lambda gx, C, cfg: _e(gx).ExpectColumnValuesToBeBetween(
                column="n_images", min_value=cfg.image_count[0], max_value=cfg.image_count[1]
            ),
        ),
        GxRule(
            "answer_json",
            "rows",
            "answer column holds JSON",
            lambda gx, C, cfg: _e(gx).ExpectColumnValuesToBeJsonParseable(column="answer"),
        ),
        GxRule(
            "answer_matches_type",
            "rows",
            "the parsed answer has the shape its answer_type needs (letter/text string, number, "
            "image number, [x1,y1,x2,y2], {image, bbox})",
            lambda gx, C, cfg: _e(gx).ExpectColumnPairValuesToBeInSet(
                column_A="answer_type",
                column_B="answer_kind",
                value_pairs_set=[(t, k) for t, ks in ANSWER_SHAPES.items() for k in ks],
                ignore_row_if="either_value_is_missing",
            ),
        ),
        GxRule(
            "choices_present",
            "rows",
            f"choice questions offer 2-{len(CHOICE_LETTERS)} choices",
            lambda gx, C, cfg: _e(gx).ExpectColumnValuesToBeBetween(
                column="n_choices",
                min_value=2,
                max_value=len(CHOICE_LETTERS),
                row_condition=C("answer_type") == choice,
            ),
        ),
        GxRule(
            "choice_answer_is_letter",
            "rows",
            "a choice answer is one option letter",
            lambda gx, C, cfg: _e(gx).ExpectColumnValuesToMatchRegex(
                column="answer_text",
                regex=f"^[{CHOICE_LETTERS}]$",
                row_condition=C("answer_type") == choice,
            ),
        ),
        GxRule(
            "choice_answer_in_choices",
            "rows",
            "the answer letter names one of the offered choices",
            lambda gx, C, cfg: _e(gx).ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="n_choices",
                column_B="answer_choice_pos",
                row_condition=C("answer_type") == choice,
                ignore_row_if="either_value_is_missing",
            ),
        ),
        GxRule(
            "answer_image_positive",
            "rows",
            "an answered image number is >= 1 (1-based)",
            lambda gx, C, cfg: _e(gx).ExpectColumnValuesToBeBetween(
                column="answer_image", min_value=1
            ),
        ),
        GxRule(
            "answer_image_exists",
            "rows",
            "an answered image number is <= the number of images",
            lambda gx, C, cfg: _e(gx).ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="n_images",
                column_B="answer_image",
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            ),
        ),
        *(
            GxRule(
                f"answer_box_{a}_ordered",
                "rows",
                f"answer box has {hi} > {lo}",
                lambda gx, C, cfg, lo=lo, hi=hi: _e(gx).ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A=f"box_{hi}",
                    column_B=f"box_{lo}",
                    ignore_row_if="either_value_is_missing",
                ),
            )
            for a, lo, hi in (("x", "x1", "x2"), ("y", "y1", "y2"))
        ),
        *(
            GxRule(
                f"answer_box_{c}_nonnegative",
                "rows",
                f"answer box {c} >= 0",
                lambda gx, C, cfg, c=c: _e(gx).ExpectColumnValuesToBeBetween(
                    column=f"box_{c}", min_value=0
                ),
            )
            for c in ("x1", "y1")
        ),
        *(
            GxRule(
                f"answer_box_inside_{dim}",
                "rows",
                f"answer box {c} <= image {dim} (of the answered image, or the first evidence image for bbox)",
                lambda gx, C, cfg, c=c, dim=dim: _e(gx).ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A=f"box_img_{dim[0]}",
                    column_B=f"box_{c}",
                    or_equal=True,
                    ignore_row_if="either_value_is_missing",
                ),
            )
            for c, dim in (("x2", "width"), ("y2", "height"))
        ),
        GxRule(
            "option_balance",
            "balance",
            "per split, no option letter answers more than max(max_option_share, fair share + option_slack)",
            lambda gx, C, cfg: _e(gx).ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="limit",
                column_B="share",
                or_equal=True,
                row_condition=C("rule") == "option_balance",
            ),
        ),
        GxRule(
            "image_index_balance",
            "balance",
            "per split, no image number answers more than its fair share + image_index_slack",
            lambda gx, C, cfg: _e(gx).ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="limit",
                column_B="share",
                or_equal=True,
                row_condition=C("rule") == "image_index_balance",
            ),
        ),
    ]
    return rules


RULES: list[GxRule] = _rules()
ROW_FRAME_COLUMNS = (
    "row",
    "id",
    "task",
    "source",
    "split",
    "question",
    "answer_type",
    "answer",
    "n_images",
    "n_choices",
    "answer_kind",
    "answer_text",
    "answer_choice_pos",
    "answer_image",
    "box_x1",
    "box_y1",
    "box_x2",
    "box_y2",
    "box_img_w",
    "box_img_h",
)
BALANCE_FRAME_COLUMNS = ("row", "rule", "split", "value", "count", "n", "share", "fair", "limit")


@dataclass
class GxOutcome:
    """One expectation's result: rows (frame `row` values) it flagged, or why it could not run."""

    rule: str
    success: bool
    element_count: int
    unexpected_rows: list[int]
    unexpected_values: list[dict[str, Any]] = field(
        default_factory=list
    )  # per row: column -> value
    error: str | None = None
    skipped: bool = False


class GxRunner:
    """An ephemeral GX context holding both suites; validates frames, renders data docs."""

    def __init__(self, cfg: ValidateConfig) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.expectations.row_conditions import Column

        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self._source = self.context.data_sources.add_pandas("miva")
        self.suites = {}
        for frame_name in ("rows", "balance"):
            suite = self.context.suites.add(gx.ExpectationSuite(name=f"miva_{frame_name}"))
            for rule in RULES:
                if rule.frame == frame_name:
                    exp = rule.build(gx, Column, cfg)
                    exp.meta = {"rule": rule.name}
                    exp.description = rule.description
                    suite.add_expectation(exp)
            self.suites[frame_name] = suite

    def validate(self, frame_name: str, frame: pd.DataFrame) -> dict[str, GxOutcome]:
        """Run one suite over `frame` (which has a `row` column); outcomes by rule name.

        A frame with no rows is not validated: its rules come back `skipped`.
        """
        gx = self._gx
        names = [r.name for r in RULES if r.frame == frame_name]
        if frame.empty:
            return {n: GxOutcome(n, True, 0, [], skipped=True) for n in names}
        batch = self._source.add_dataframe_asset(name=frame_name)
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(
                name=f"miva_{frame_name}",
                data=batch.add_batch_definition_whole_dataframe("all"),
                suite=self.suites[frame_name],
            )
        )
        result = definition.run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["row"]},
        )
        outcomes: dict[str, GxOutcome] = {}
        for res in result.results:
            name = res.expectation_config.meta["rule"]
            info = res.exception_info or {}
            error = info.get("exception_message") if info.get("raised_exception") else None
            listed = res.result.get("unexpected_index_list") or []
            outcomes[name] = GxOutcome(
                name,
                bool(res.success) and error is None,
                int(res.result.get("element_count") or len(frame)),
                [int(item["row"]) for item in listed],
                [{k: v for k, v in item.items() if k != "row"} for item in listed],
                error,
            )
        for n in names:  # an expectation GX dropped from the results would otherwise vanish
            outcomes.setdefault(n, GxOutcome(n, False, 0, [], error="no result returned"))
        return outcomes

    def build_docs(self, docs_dir: Path) -> Path:
        """Render suites and validation results as a static HTML site; returns index.html."""
        docs_dir.mkdir(parents=True, exist_ok=True)
        self.context.add_data_docs_site(
            site_name="miva",
            site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir.resolve()),
                },
            },
        )
        self.context.build_data_docs(site_names=["miva"])
        return docs_dir / "index.html"
