"""A self-contained HTML evaluation report (plots and images inline as base64 PNG).

Sections: headline metrics per set (with baseline and delta), per-task bars with the
baseline's bars and deltas, tool usage by task, accuracy by number of turns, skipped items
per benchmark, and a gallery of correct and wrong items showing the images (gold box green,
predicted box red) and the tool crops the model looked at.
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from miva.eval.results import EvalResult, ItemRecord

GALLERY_PER_KIND = 4
THUMB = 160


def _png_b64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _fig_b64(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _img_tag(b64: str, alt: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img alt="{html.escape(alt)}"{w} src="data:image/png;base64,{b64}">'


def _headline(result: EvalResult, set_name: str) -> str:
    scorer = next(es.scorer for es in result.sets if es.name == set_name)
    return scorer.metric


def _overall_last(tasks) -> list[str]:
    """Task names sorted, with the `overall` aggregate as the last bar."""
    return sorted(tasks, key=lambda t: (t == "overall", t))


def task_bars(result: EvalResult, set_name: str) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = _headline(result, set_name)
    prefix = f"eval/{set_name}/"
    tasks = _overall_last(
        k[len(prefix) : -len(metric) - 1]
        for k in result.metrics
        if k.startswith(prefix) and k.endswith(f"/{metric}") and k.count("/") == 3
    )
    if not tasks:
        return None
    main = [result.metrics[f"eval/{set_name}/{t}/{metric}"] for t in tasks]
    base = [result.metrics.get(f"baseline/{set_name}/{t}/{metric}") for t in tasks]
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(tasks) + 2), 3.2))
    xs = range(len(tasks))
    width = 0.4 if result.baseline else 0.6
    ax.bar(
        [x - (width / 2 if result.baseline else 0) for x in xs],
        main,
        width,
        label=result.main.model,
    )
    if result.baseline:
        ax.bar(
            [x + width / 2 for x in xs], [b or 0 for b in base], width, label=result.baseline.model
        )
        for x, m, b in zip(xs, main, base, strict=True):
            if b is not None:
                ax.annotate(
                    f"{m:.2f} vs {b:.2f}\n({m - b:+.2f})",
                    (x, max(m, b)),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    else:
        for x, m in zip(xs, main, strict=True):
            ax.annotate(f"{m:.2f}", (x, m), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(xs), tasks, rotation=30, ha="right")
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1.2)
    ax.set_title(f"{set_name}: {metric} per task")
    ax.legend(fontsize=8)
    return _fig_b64(fig)


def tool_usage(result: EvalResult, set_name: str) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prefix = f"eval/{set_name}/"
    rates: dict[str, dict[str, float]] = defaultdict(dict)
    for k, v in result.metrics.items():
        if k.startswith(prefix) and "/tool_call_rate/" in k:
            task, _, tool = k[len(prefix) :].partition("/tool_call_rate/")
            rates[tool][task] = v
    if not rates:
        return None
    tasks = _overall_last({t for r in rates.values() for t in r})
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(tasks) + 2), 3.2))
    width = 0.8 / len(rates)
    for i, (tool, by_task) in enumerate(sorted(rates.items())):
        ax.bar(
            [x + i * width for x in range(len(tasks))],
            [by_task.get(t, 0) for t in tasks],
            width,
            label=tool,
        )
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(tasks))], tasks, rotation=30, ha="right")
    ax.set_ylabel("share of items calling the tool")
    ax.set_ylim(0, 1.05)
    called = any(v > 0 for r in rates.values() for v in r.values())
    ax.set_title(f"{set_name}: tool usage by task" + ("" if called else " (no tool was called)"))
    ax.legend(fontsize=8)
    return _fig_b64(fig)


def accuracy_by_turns(records: list[ItemRecord], title: str) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_turns: dict[int, list[bool]] = defaultdict(list)
    for r in records:
        by_turns[r.num_turns].append(r.correct)
    if not by_turns:
        return None
    turns = sorted(by_turns)
    acc = [sum(by_turns[t]) / len(by_turns[t]) for t in turns]
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar([str(t) for t in turns], acc, color="tab:green")
    for i, t in enumerate(turns):
        ax.annotate(f"n={len(by_turns[t])}", (i, acc[i]), ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("assistant turns")
    ax.set_ylabel("share correct")
    ax.set_ylim(0, 1.1)
    ax.set_title(title)
    return _fig_b64(fig)


def _boxes(sample, prediction: str | None) -> tuple[dict[int, list], dict[int, list]]:
    """Gold boxes (evidence) and predicted boxes per 1-based image, dataset pixels."""
    from miva.scoring import parse_box, parse_image_box

    gold: dict[int, list] = defaultdict(list)
    for e in sample.evidence:
        gold[e.image].append(e.bbox)
    pred: dict[int, list] = defaultdict(list)
    if prediction:
        if sample.answer_type == "bbox":
            box = parse_box(prediction)
            if box and sample.evidence:
                pred[sample.evidence[0].image].append(box)
        elif sample.answer_type == "image_bbox":
            k, box = parse_image_box(prediction)
            if k and box:
                pred[k].append(box)
        elif sample.meta.get("benchmark") == "mc-bench":
            from miva.data.benchmarks.mc_bench import parse_targets

            for k, box in parse_targets(prediction)[0]:
                pred[k].append(box)
    return gold, pred


def _thumb(img: Image.Image, gold: list, pred: list) -> str:
    img = img.convert("RGB").copy()
    draw = ImageDraw.Draw(img)
    width = max(1, round(max(img.size) / 150))
    for box in gold:
        draw.rectangle([float(v) for v in box], outline=(0, 200, 0), width=width)
    for box in pred:
        draw.rectangle([float(v) for v in box], outline=(230, 0, 0), width=width)
    img.thumbnail((THUMB, THUMB))
    return _png_b64(img)


STATUS_HELP = {
    "ok": "the model finished on its own",
    "truncated": "stopped at the token limit (agent.max_new_tokens / max_total_tokens)",
    "malformed": "stopped on a malformed tool call",
    "tool_error": "the last tool call failed",
    "max_turns": "still running after agent.max_turns",
    "image_budget": "tool images exceeded the image budget",
}


def _last_assistant_text(traj) -> str:
    texts = [t.text for t in traj.turns if t.role == "assistant"]
    return texts[-1] if texts else ""


def _gallery_item(result: EvalResult, r: ItemRecord, baseline: ItemRecord | None = None) -> str:
    sample = result.main.samples[(r.set, r.sample_id)]
    traj = result.main.trajectories[(r.set, r.sample_id)]
    gold, pred = _boxes(sample, r.prediction)
    imgs = [
        f"<figure>{_img_tag(_thumb(img, gold.get(k, []), pred.get(k, [])), f'image {k}')}"
        f"<figcaption>image {k}</figcaption></figure>"
        for k, img in enumerate(sample.pil_images(), start=1)
    ]
    crops = []
    for img in traj.images[len(sample.images) :]:
        if isinstance(img, Image.Image):
            small = img.convert("RGB").copy()
            small.thumbnail((THUMB // 2 + 20, THUMB // 2 + 20))
            crops.append(_img_tag(_png_b64(small), "tool image"))
    calls = ", ".join(f"{c.name}({_short(c.arguments)})" for c in traj.tool_calls) or "none"
    verdict = "correct" if r.correct else "wrong"
    if r.raw_answer is None:
        said = (
            "<i>no &lt;answer&gt;</i>; last turn: "
            f"<code>{html.escape(_last_assistant_text(traj)[:200])}</code>"
        )
    else:
        said = f"<code>{html.escape(r.raw_answer[:200])}</code>"
        if r.prediction is not None and r.prediction != r.raw_answer:
            said += f" &rarr; read as <code>{html.escape(r.prediction[:200])}</code>"
    base = ""
    if baseline is not None:
        b_said = "no answer" if baseline.raw_answer is None else baseline.raw_answer[:200]
        b_verdict = "correct" if baseline.correct else "wrong"
        base = (
            f"<br>baseline: <code>{html.escape(b_said)}</code> ({b_verdict}, "
            f"status {html.escape(baseline.status)})"
        )
    status = html.escape(r.status)
    status_help = html.escape(STATUS_HELP.get(r.status, ""))
    return (
        f'<div class="item {verdict}"><div class="imgs">{"".join(imgs)}</div>'
        + (f'<div class="crops">tool images: {"".join(crops)}</div>' if crops else "")
        + f"<p><b>{html.escape(r.set)} / {html.escape(r.task)}</b>: {verdict} "
        f"(score {r.score:.2f}, {r.num_turns} turn{'s' if r.num_turns != 1 else ''}, "
        f'status <span title="{status_help}">{status}</span>)</p>'
        f"<p>Q: {html.escape(r.question[:400])}</p>"
        f"<p>gold: <code>{html.escape(r.gold[:200])}</code><br>model: {said}{base}</p>"
        f"<p>tool calls: {html.escape(calls[:300])}</p></div>"
    )


def _attention_section(result: EvalResult, set_name: str) -> list[str]:
    """The attention-to-image plot (`evaluate.attention_diagnostics`), when the run has one."""
    from miva.eval.attention import attention_plot

    runs = [r for r in (result.main, result.baseline) if r is not None]
    curves = {r.model: r.attention.get(set_name, {}) for r in runs}
    plot = attention_plot(curves, f"{set_name}: attention to image tokens")
    if plot is None:
        return []
    return [
        "<h3>Attention to the image</h3><p>Share of attention mass on image tokens while "
        "the model writes each token (mean over heads and layers), by the token's position "
        "among generated tokens: before the first tool call, and after tool results that "
        "brought new images.</p>",
        _img_tag(plot, "attention to image tokens"),
    ]


def _short(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in args.items())[:80]


def _metric_table(result: EvalResult) -> str:
    rows = []
    for k in sorted(result.metrics):
        if not k.startswith("eval/") or "/overall/" not in k:
            continue
        name = k[len("eval/") :]
        base = result.metrics.get(f"baseline/{name}")
        delta = result.metrics.get(f"delta/{name}")
        cells = f"<td>{result.metrics[k]:.4f}</td>"
        if result.baseline:
            cells += f"<td>{'' if base is None else f'{base:.4f}'}</td>"
            cells += f"<td>{'' if delta is None else f'{delta:+.4f}'}</td>"
        rows.append(f"<tr><td>{html.escape(name)}</td>{cells}</tr>")
    head = "<tr><th>metric</th><th>" + html.escape(result.main.model) + "</th>"
    if result.baseline:
        head += f"<th>{html.escape(result.baseline.model)}</th><th>delta</th>"
    return f"<table>{head}</tr>{''.join(rows)}</table>"


CSS = """
body{font-family:sans-serif;margin:2em;max-width:1200px} table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px} .item{border:2px solid #ccc;
margin:6px;padding:6px;display:inline-block;vertical-align:top;width:540px;font-size:13px}
.correct{border-color:#2a2} .wrong{border-color:#c22} .imgs img{margin:2px}
figure{display:inline-block;margin:2px;text-align:center} figcaption{font-size:11px;color:#555}
"""


def _intro(result: EvalResult) -> str:
    lines = [
        f"<p>model: <code>{html.escape(result.main.model)}</code>",
    ]
    if result.baseline:
        lines.append(
            f"<br>baseline: <code>{html.escape(result.baseline.model)}</code>, on the same "
            "items; <b>delta</b> = model &minus; baseline"
        )
    lines.append("</p><ul>")
    for es in result.sets:
        lines.append(
            f"<li><b>{html.escape(es.name)}</b>: {len(es.samples)} items scored by "
            f"{html.escape(es.scorer.title)}; headline <code>{html.escape(es.scorer.metric)}"
            f"</code>; eval-set digest <code>{html.escape(es.digest or '-')}</code></li>"
        )
    lines.append(
        "</ul><p>Rates are shares of items (0-1). <code>invalid_rate</code>: no answer or "
        "one that could not be read; <code>status/*</code>: how trajectories ended "
        "(hover a status in the gallery for its meaning).</p>"
    )
    return "".join(lines)


def _verdicts(result: EvalResult) -> str:
    """Each accuracy in words: against the majority-label share of its items (with the 95 %
    interval) and, with a baseline, against the starting model (paired test)."""
    from miva.eval.verdict import verdicts

    lines = verdicts(result.metrics)
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return (
        "<p>What the accuracies mean: the <b>majority share</b> is what answering the most "
        "frequent gold answer of those items always would score; the interval is Wilson's "
        "95 %; <b>paired p</b> is the exact McNemar test on the items both models answered.</p>"
        f"<ul>{items}</ul>"
    )


def render(result: EvalResult) -> str:
    parts = [f"<h1>MIVA evaluation: {html.escape(result.main.model)}</h1>", _intro(result)]
    parts.append("<h2>Overall</h2>" + _metric_table(result) + _verdicts(result))
    baseline_rows = {
        (r.set, r.sample_id): r
        for r in (result.baseline.records if result.baseline else [])
        if r.sample_index == 0
    }
    for es in result.sets:
        parts.append(
            f"<h2>{html.escape(es.name)} ({len(es.samples)} items, {es.scorer.title})</h2>"
        )
        plots = [task_bars(result, es.name), tool_usage(result, es.name)]
        parts.extend(_img_tag(p, "plot") for p in plots if p)
        records = [r for r in result.main.records if r.set == es.name and r.sample_index == 0]
        plot = accuracy_by_turns(records, f"{es.name}: correct by turns")
        if plot:
            parts.append(_img_tag(plot, "accuracy by turns"))
        parts.extend(_attention_section(result, es.name))
        if plots[1] is None:
            parts.append("<p>No tool was available or called on this set.</p>")
        if es.skipped:
            rows = "".join(
                f"<tr><td>{html.escape(s.item)}</td><td>{html.escape(s.reason)}</td></tr>"
                for s in es.skipped
            )
            parts.append(
                f"<h3>Skipped items ({len(es.skipped)})</h3><p>Not scored and not counted in "
                f"the metrics above.</p><table>{rows}</table>"
            )
        for verdict in (True, False):
            matching = [r for r in records if r.correct == verdict]
            chosen = matching[:GALLERY_PER_KIND]
            if chosen:
                parts.append(
                    f"<h3>{'Correct' if verdict else 'Wrong'} items ({len(chosen)} of "
                    f"{len(matching)})</h3><p>Gold boxes green, predicted boxes red.</p>"
                )
                parts.extend(
                    _gallery_item(result, r, baseline_rows.get((r.set, r.sample_id)))
                    for r in chosen
                )
    body = "\n".join(parts)
    return f"<!doctype html><html><head><meta charset='utf-8'><title>MIVA eval</title><style>{CSS}</style></head><body>{body}</body></html>"


def write_report(result: EvalResult, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render(result), encoding="utf-8")
    return path
