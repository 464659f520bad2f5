"""`miva validate`: read every row, check it, decide, write clean/ and quarantine/.

Order of work:

1. Pass one, shard by shard (`load.read_shard`, `rows.inspect_row`): rows are read with
   pyarrow whatever their state; images are decoded and hashed; the metadata table is
   built (no image bytes are kept).
2. The GX row suite runs over the metadata table; each unexpected row gets the rule's
   name as a reason (for duplicated ids the first otherwise-clean occurrence is kept).
3. Cross-row checks on the rows still clean: images shared between splits, then
   near-duplicate questions over identical images.
4. The GX balance suite runs over the answer shares of the final clean rows per split.
5. Pass two re-reads the shards and streams every row into exactly one of clean/ (a
   dataset in the contract, via `write_dataset`) or quarantine/ (raw row + reasons).
   Unreadable shards get one quarantine entry each and a copy under quarantine/unreadable/.
6. report.json, data_docs/ (GX HTML) and the verdict.

`validate_dataset` returns the `Report` and never raises for bad data; the CLI raises
`ValidationFailed` (exit code 4) when the verdict is fail.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from miva import storage
from miva.config import ValidateConfig
from miva.data.io import arrow_schema, read_info, write_dataset
from miva.data.schema import Sample
from miva.errors import ConfigError, DataError
from miva.validate import load, rows
from miva.validate.balance import BalanceRow, image_index_balance, option_balance
from miva.validate.report import MAX_EXAMPLES, Report, RuleResult, count_by_rule
from miva.validate.suite import (
    BALANCE_FRAME_COLUMNS,
    ROW_FRAME_COLUMNS,
    RULES,
    GxOutcome,
    GxRunner,
)

DATASET_RULES = {
    "shards_readable": "every parquet shard under data/ can be read",
    "dataset_not_empty": "the dataset has at least one row",
    "checks_ran": "every expectation ran without an exception",
    "manifest_matches": "dataset.json is readable and its row count per split equals the rows its shards hold",
}
ROW_RULES = {
    "column_types": "every contract column is present with its contract type",
    "row_parses": "meta is a JSON object and the row converts to a Sample",
    "images_decode": "every image decodes completely (PIL verify + load)",
    "image_sizes_match": 'decoded sizes equal meta["image_sizes"] when the row records them',
    "evidence_in_bounds": "evidence names an existing image; its box is ordered and inside it",
}
CROSS_RULES = {
    "image_shared_between_splits": "no image (decoded-pixel hash) in two splits; test > val > train keeps it",
    "near_duplicate_question": "no two questions over identical images with shingle Jaccard >= near_duplicate_threshold",
}
GX_RULES = {r.name: r for r in RULES}
ALL_RULES = [*DATASET_RULES, *ROW_RULES, *CROSS_RULES, *GX_RULES]
QUARANTINE_README = """# Quarantine

Rows that `miva validate` rejected, one parquet row each, with why.

- contract columns as read (images keep their bytes); a column whose type broke the
  contract is null here and its original value is in `bad_columns` (JSON text)
- `reasons`: list of "<rule>: <detail>" (rules are described in ../report.json)
- `source_file`, `source_row`: where the row was in the input dataset
- `unreadable/`: copies of parquet shards that could not be read at all; each has one
  entry here with `source_row` null

Counts by rule:

{counts}
"""


def validate_dataset(
    source: str | Path,
    out: str | Path,
    cfg: ValidateConfig,
    progress: bool = True,
    data_docs: bool = True,
) -> Report:
    """Validate the dataset at `source`; write report.json, data_docs/, clean/, quarantine/ to `out`."""
    unknown = sorted(set(cfg.critical_rules) - set(ALL_RULES))
    if unknown:
        raise ConfigError(
            f"validate.critical_rules has unknown rule(s) {unknown}; known: {ALL_RULES}"
        )
    folder = storage.localize(source)
    if not folder.is_dir():
        raise DataError(f"{source}: no such dataset folder")
    with storage.local_dir(out, prefix="miva-validate-") as out_dir:
        if out_dir.resolve() == folder.resolve():
            raise ConfigError(
                f"output folder {out} is the dataset folder itself; pick another --out"
            )
        for name in ("report.json", "data_docs", "clean", "quarantine"):
            target = out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        out_dir.mkdir(parents=True, exist_ok=True)
        report = _validate(folder, str(source), str(out), out_dir, cfg, progress, data_docs)
        (out_dir / "report.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
    return report


# ----------------------------------------------------------------------------- the work


def _validate(
    folder: Path,
    source: str,
    out: str,
    out_dir: Path,
    cfg: ValidateConfig,
    progress: bool,
    data_docs: bool,
) -> Report:
    critical = set(cfg.critical_rules)
    clock = _Clock()
    results: list[RuleResult] = []

    # 1. pass one
    paths = load.shard_files(folder)
    shards: list[load.Shard] = []
    infos: list[rows.RowInfo] = []
    where: list[tuple[int, int]] = []  # global row -> (shard index, row in shard)
    for si, (shard, shard_infos) in enumerate(
        tqdm(
            _check_shards(paths, folder, cfg.workers),
            total=len(paths),
            desc="validate: check",
            unit="shard",
            disable=not progress,
        )
    ):
        infos.extend(shard_infos)
        where.extend((si, ri) for ri in range(len(shard_infos)))
        shards.append(shard)
    labels = [
        f"{info.meta.get('id') or '<no id>'} ({shards[si].name}:{ri})"
        for info, (si, ri) in zip(infos, where, strict=True)
    ]
    reasons = [info.reasons for info in infos]
    n = len(infos)

    unreadable = [s for s in shards if s.error]
    lost_from_manifest = _lost_by_manifest(folder, shards)
    lost_known = sum(s.lost_rows or 0 for s in unreadable) + sum(lost_from_manifest.values())
    lost_unknown = [
        s.name
        for s in unreadable
        if s.lost_rows is None and load.split_of_file(s.path) not in lost_from_manifest
    ]
    results.append(
        _rule(
            "shards_readable",
            "dataset",
            critical,
            checked=len(shards),
            failing=[],
            details=[
                f"{s.name}: {s.error}; rows lost: {_lost_text(s, lost_from_manifest)}"
                for s in unreadable
            ],
            failed=len(unreadable),
        )
    )
    results.append(
        _rule(
            "dataset_not_empty",
            "dataset",
            critical,
            checked=1,
            failing=[],
            failed=0 if n else 1,
            details=[] if n else [f"{folder}: no rows in {len(paths)} shard(s) under data/"],
        )
    )
    results.append(_manifest_rule(folder, shards, critical))

    clock.lap("check_rows")
    # 2. GX row suite
    frame = pd.DataFrame.from_records(
        [{"row": i, **info.meta} for i, info in enumerate(infos)], columns=list(ROW_FRAME_COLUMNS)
    )
    runner = GxRunner(cfg)
    outcomes = runner.validate("rows", frame)
    _quarantine_gx_failures(outcomes, infos, reasons, labels)

    clock.lap("gx_rows")
    # 3. cross-row checks on rows still clean
    _cross_row_checks(infos, reasons, labels, cfg.near_duplicate_threshold)
    clean_rows = [i for i in range(n) if not reasons[i]]

    clock.lap("cross_rows")
    # 4. balance of the clean rows
    balance_rows, skipped = _balance(infos, clean_rows, cfg)
    balance = pd.DataFrame.from_records(
        [{"row": j, **b.to_dict()} for j, b in enumerate(balance_rows)],
        columns=list(BALANCE_FRAME_COLUMNS),
    )
    outcomes.update(runner.validate("balance", balance))
    results += _rule_results(outcomes, reasons, labels, balance_rows, skipped, critical)

    clock.lap("balance")
    # 5. pass two: outputs
    quarantined = [rs for rs in reasons if rs]
    clean_counts = _write_outputs(folder, out_dir, shards, reasons, where, cfg, source, progress)
    if data_docs:
        runner.build_docs(out_dir / "data_docs")

    clock.lap("write_outputs")
    by_rule = count_by_rule(quarantined)
    if unreadable:
        by_rule["shards_readable"] = lost_known
    order = {name: i for i, name in enumerate(ALL_RULES)}
    results.sort(key=lambda r: order.get(r.name, len(order)))
    return Report(
        dataset=source,
        output=out,
        rules=results,
        rows_read=n,
        rows_lost_on_disk=lost_known,
        rows_lost_unknown_shards=lost_unknown,
        rows_lost_by_manifest=lost_from_manifest,
        rows_clean=len(clean_rows),
        rows_quarantined=len(quarantined),
        quarantine_by_rule=by_rule,
        max_quarantine_fraction=cfg.max_quarantine_fraction,
        files=[
            {
                "file": s.name,
                "rows_read": s.num_rows,
                "status": "unreadable" if s.error else "ok",
                "error": s.error,
                "bad_columns": s.bad_columns,
                "extra_columns": s.extra_columns,
            }
            for s in shards
        ],
        clean_counts=clean_counts,
        timings_s=clock.laps,
    )


def _quarantine_gx_failures(
    outcomes: dict[str, GxOutcome],
    infos: list[rows.RowInfo],
    reasons: list[list[str]],
    labels: list[str],
) -> None:
    """Each row GX flagged gets the rule as a reason, with the offending values.

    Repeated ids: GX flags every occurrence; the first otherwise-clean one is kept.
    """
    for name, outcome in outcomes.items():
        if name == "ids_unique":
            continue
        for r, values in zip(outcome.unexpected_rows, outcome.unexpected_values, strict=False):
            got = ", ".join(f"{k}={_short(v)}" for k, v in values.items())
            reasons[r].append(
                f"{name}: {GX_RULES[name].description}" + (f" (got {got})" if got else "")
            )
    by_id: dict[Any, list[int]] = defaultdict(list)
    for r in sorted(outcomes["ids_unique"].unexpected_rows):
        by_id[infos[r].meta["id"]].append(r)
    for group in by_id.values():
        keeper = next((r for r in group if not reasons[r]), None)
        for r in group:
            if r != keeper:
                kept = f"; kept {labels[keeper]}" if keeper is not None else ""
                reasons[r].append(f"ids_unique: id repeated in {len(group)} rows{kept}")


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _cross_row_checks(
    infos: list[rows.RowInfo], reasons: list[list[str]], labels: list[str], threshold: float
) -> None:
    """Split leaks, then near duplicates, among the rows that are still clean."""
    survivors = [i for i in range(len(infos)) if not reasons[i]]
    leaks = rows.shared_images(
        (i, str(infos[i].meta["split"]), infos[i].image_keys) for i in survivors
    )
    for i, why in leaks.items():
        reasons[i].append(why)
    survivors = [i for i in survivors if not reasons[i]]
    dups = rows.near_duplicates(
        (
            (i, labels[i], tuple(infos[i].image_keys), str(infos[i].meta["question"]))
            for i in survivors
        ),
        threshold,
    )
    for i, why in dups.items():
        reasons[i].append(why)


def _rule_results(
    outcomes: dict[str, GxOutcome],
    reasons: list[list[str]],
    labels: list[str],
    balance_rows: list[BalanceRow],
    skipped: list[str],
    critical: set[str],
) -> list[RuleResult]:
    """One RuleResult per row, cross-row and GX rule, plus checks_ran."""
    n = len(reasons)
    per_rule: dict[str, list[int]] = defaultdict(list)
    for i, rs in enumerate(reasons):
        for rule in dict.fromkeys(rows.rule_of(x) for x in rs):
            per_rule[rule].append(i)
    results = [
        _rule(
            name,
            "row" if name in ROW_RULES else "cross",
            critical,
            checked=n,
            failing=per_rule[name],
            labels=labels,
            description=desc,
        )
        for name, desc in {**ROW_RULES, **CROSS_RULES}.items()
    ]
    errored = []
    for rule in RULES:
        o = outcomes[rule.name]
        if o.error:
            errored.append(f"{rule.name}: {o.error}")
        if rule.frame == "rows":
            res = _rule(
                rule.name,
                "gx",
                critical,
                checked=o.element_count,
                failing=per_rule[rule.name],
                labels=labels,
                description=rule.description,
            )
            if rule.name == "ids_unique" and o.unexpected_rows:
                res.details.append(f"{len(o.unexpected_rows)} rows share an id with another row")
        else:
            bad = [balance_rows[j] for j in o.unexpected_rows]
            res = _rule(
                rule.name,
                "split",
                critical,
                checked=o.element_count,
                failing=[],
                failed=len(bad),
                description=rule.description,
                severity_if_not_critical="warning",
                details=[
                    f"split {b.split}: {'letter' if b.rule == 'option_balance' else 'image'} {b.value} "
                    f"answers {b.count}/{b.n} = {b.share:.2f} > limit {b.limit:.2f} (fair {b.fair:.2f})"
                    for b in bad
                ]
                + [s for s in skipped if s.startswith(rule.name)],
            )
            res.skipped = o.skipped
        if o.error:
            res.passed = False
            res.details.append(f"expectation raised: {o.error}")
        results.append(res)
    results.append(
        _rule(
            "checks_ran",
            "dataset",
            critical,
            checked=len(RULES),
            failing=[],
            failed=len(errored),
            details=errored,
        )
    )
    return results


class _Clock:
    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self.t, 3)
        self.t = now


def _check_shard(path: Path, folder: Path) -> tuple[load.Shard, list[rows.RowInfo]]:
    """Pass one over one shard (runs in a worker process when workers > 1)."""
    shard = load.read_shard(path, folder)
    infos = [rows.inspect_row(raw, shard.bad_columns) for raw in shard.rows()]
    shard.table = None  # re-read in pass two; keep memory flat and the result small
    return shard, infos


def _check_shards(
    paths: list[Path], folder: Path, workers: int
) -> Iterator[tuple[load.Shard, list[rows.RowInfo]]]:
    """Shards in order, checked by `workers` processes.

    Worker processes are spawned (not forked: the caller may hold threads, e.g. GX's), so
    they cost a second or so to start; a dataset of fewer than 2 shards per worker is
    checked in this process.
    """
    if workers <= 1 or len(paths) < 2 * workers:
        yield from (_check_shard(p, folder) for p in paths)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(_check_shard, paths, [folder] * len(paths))


def _rule(
    name: str,
    kind: str,
    critical: set[str],
    checked: int,
    failing: list[int],
    labels: list[str] | None = None,
    failed: int | None = None,
    details: list[str] | None = None,
    description: str | None = None,
    severity_if_not_critical: str | None = None,
) -> RuleResult:
    count = len(failing) if failed is None else failed
    default = severity_if_not_critical or ("critical" if kind == "dataset" else "quarantine")
    if kind == "dataset" and name not in critical and severity_if_not_critical is None:
        default = "warning"
    return RuleResult(
        name=name,
        kind=kind,
        severity="critical" if name in critical else default,
        description=description or DATASET_RULES.get(name, ""),
        passed=count == 0,
        checked=checked,
        failed=count,
        examples=[labels[i] for i in failing[:MAX_EXAMPLES]] if labels else [],
        details=list(details or []),
    )


def _lost_by_manifest(folder: Path, shards: list[load.Shard]) -> dict[str, int]:
    """Rows lost in splits whose unreadable shards do not even tell their row count:
    dataset.json's count for the split minus the rows the split's other shards hold
    (split -> rows). Splits it cannot tell (no readable dataset.json) are left out."""
    unknown = {load.split_of_file(s.path) for s in shards if s.error and s.lost_rows is None}
    if not unknown:
        return {}
    try:
        info = read_info(folder)
    except DataError:
        return {}
    out = {}
    for split in sorted(unknown):
        if split not in info.counts:
            continue
        held = sum(
            s.num_rows + (s.lost_rows or 0) for s in shards if load.split_of_file(s.path) == split
        )
        out[split] = max(sum(info.counts[split].values()) - held, 0)
    return out


def _lost_text(shard: load.Shard, lost_from_manifest: dict[str, int]) -> str:
    if shard.lost_rows is not None:
        return str(shard.lost_rows)
    split = load.split_of_file(shard.path)
    if split in lost_from_manifest:
        return (
            f"{lost_from_manifest[split]} (counted from dataset.json: the {split} rows "
            "no readable shard holds)"
        )
    return "unknown (no parquet footer, and dataset.json cannot tell)"


def _manifest_rule(folder: Path, shards: list[load.Shard], critical: set[str]) -> RuleResult:
    """dataset.json's counts per split against the rows its shards hold: a missing or
    truncated shard file shows up here, named by split and file pattern."""
    try:
        info = read_info(folder)
    except DataError as exc:
        return _rule("manifest_matches", "dataset", critical, 1, [], failed=1, details=[str(exc)])
    on_disk: dict[str, int] = defaultdict(int)
    unknown: set[str] = set()
    for shard in shards:
        split = load.split_of_file(shard.path)
        on_disk[split] += shard.num_rows + (shard.lost_rows or 0)
        if shard.lost_rows is None:
            unknown.add(split)
    details = []
    for split in sorted(set(info.counts) | set(on_disk)):
        said = sum(info.counts.get(split, {}).values())
        if split not in unknown and said != on_disk.get(split, 0):
            details.append(
                f"split {split}: dataset.json says {said} rows, data/{split}-*.parquet hold "
                f"{on_disk.get(split, 0)} (a shard file missing, truncated or added?)"
            )
    return _rule(
        "manifest_matches",
        "dataset",
        critical,
        len(info.counts),
        [],
        failed=len(details),
        details=details,
    )


def _balance(infos: list[rows.RowInfo], clean: list[int], cfg: ValidateConfig):
    options, images = [], []
    for i in clean:
        m = infos[i].meta
        if m["answer_type"] == "choice" and m["answer_choice_pos"] is not None:
            options.append((m["split"], m["answer_choice_pos"], m["n_choices"]))
        elif m["answer_type"] in ("image_index", "image_bbox") and m["answer_image"] is not None:
            images.append((m["split"], m["answer_image"], m["n_images"]))
    a, skip_a = option_balance(
        options, cfg.max_option_share, cfg.option_slack, cfg.balance_min_rows
    )
    b, skip_b = image_index_balance(images, cfg.image_index_slack, cfg.balance_min_rows)
    return a + b, skip_a + skip_b


# ----------------------------------------------------------------------------- outputs


def _write_outputs(
    folder: Path,
    out_dir: Path,
    shards: list[load.Shard],
    reasons: list[list[str]],
    where: list[tuple[int, int]],
    cfg: ValidateConfig,
    source: str,
    progress: bool,
) -> dict[str, dict[str, int]]:
    index = {loc: i for i, loc in enumerate(where)}
    quarantine = _QuarantineWriter(out_dir / "quarantine")

    def clean_samples() -> Iterator[Sample]:
        for si, shard in enumerate(
            tqdm(shards, desc="validate: write", unit="shard", disable=not progress)
        ):
            if shard.error:
                quarantine.unreadable(shard)
            reread = load.read_shard(shard.path, folder)
            for ri, raw in enumerate(reread.rows()):
                i = index.get((si, ri))
                if i is None:  # the file changed since pass one: do not guess
                    raise DataError(f"{shard.name}: changed while being validated; run again")
                if reasons[i]:
                    quarantine.add(raw, reasons[i], shard, ri)
                else:
                    yield Sample.from_row(raw)

    try:
        old = read_info(folder)
        name, digest = old.name, old.digest
    except DataError:
        name, digest = folder.name, None
    info = write_dataset(
        clean_samples(),
        out_dir / "clean",
        generator={
            "validated_from": source,
            "source_digest": digest,
            "validate": cfg.model_dump(mode="json"),
        },
        name=f"{name}-clean",
    )
    quarantine.close()
    return info.counts


class _QuarantineWriter:
    """Streams rejected rows into quarantine/data/quarantine-NNNNN.parquet."""

    ROWS_PER_FILE = 512

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "data").mkdir(parents=True, exist_ok=True)
        base = arrow_schema().remove_metadata()
        self.schema = pa.schema(
            [
                *base,
                pa.field("reasons", pa.list_(pa.string())),
                pa.field("source_file", pa.string()),
                pa.field("source_row", pa.int64()),
                pa.field("bad_columns", pa.string()),
            ]
        )
        self.buffer: list[dict[str, Any]] = []
        self.files = 0
        self.reasons: list[list[str]] = []

    def add(
        self, raw: dict[str, Any], reasons: list[str], shard: load.Shard, row: int | None
    ) -> None:
        bad = {c: raw.get(c) for c in shard.bad_columns if raw.get(c) is not None}
        record = {
            c: (None if c in shard.bad_columns else raw.get(c)) for c in load.CONTRACT_COLUMNS
        }
        if isinstance(record["images"], list):
            record["images"] = [
                {"bytes": img, "path": None} if isinstance(img, bytes | bytearray) else img
                for img in record["images"]
            ]
        try:  # a value the contract type cannot hold: keep it as text instead
            self._check(record)
        except (pa.ArrowException, TypeError, ValueError):
            bad.update({c: v for c, v in record.items() if v is not None})
            record = dict.fromkeys(load.CONTRACT_COLUMNS)
        record.update(
            reasons=list(reasons),
            source_file=shard.name,
            source_row=row,
            bad_columns=_json_text(bad) if bad else None,
        )
        self.buffer.append(record)
        self.reasons.append(list(reasons))
        if len(self.buffer) >= self.ROWS_PER_FILE:
            self._flush()

    def _check(self, record: dict[str, Any]) -> None:
        pa.Table.from_pylist(
            [record], schema=pa.schema([self.schema.field(c) for c in load.CONTRACT_COLUMNS])
        )

    def unreadable(self, shard: load.Shard) -> None:
        dest = self.folder / "unreadable" / shard.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shard.path, dest)
        lost = shard.lost_rows if shard.lost_rows is not None else "an unknown number of"
        self.add(
            dict.fromkeys(load.CONTRACT_COLUMNS),
            [
                f"shards_readable: {shard.error}; {lost} rows could not be read; "
                f"the file is kept as quarantine/unreadable/{shard.name}"
            ],
            load.Shard(path=shard.path, name=shard.name),
            None,
        )

    def _flush(self) -> None:
        if not self.buffer:
            return
        table = pa.Table.from_pylist(self.buffer, schema=self.schema)
        pq.write_table(table, self.folder / "data" / f"quarantine-{self.files:05d}.parquet")
        self.files += 1
        self.buffer = []

    def close(self) -> None:
        self._flush()
        counts = count_by_rule(self.reasons)
        table = "\n".join(f"- {rule}: {c}" for rule, c in sorted(counts.items())) or "- (none)"
        (self.folder / "README.md").write_text(QUARANTINE_README.format(counts=table))


def _json_text(values: dict[str, Any]) -> str:
    def short(v: Any) -> Any:
        text = json.dumps(
            v, default=lambda o: f"<{len(o)} bytes>" if isinstance(o, bytes | bytearray) else str(o)
        )
        return text if len(text) <= 2000 else text[:2000] + "...(cut)"

    return json.dumps({k: short(v) for k, v in values.items()})
