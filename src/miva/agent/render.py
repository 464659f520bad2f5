"""Readable views of trajectories: plain text for the terminal and an HTML page with the
images inline. Every image the model saw (tool crops included) is saved as a PNG."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from miva.agent.format import IMAGE_PLACEHOLDER
from miva.agent.trajectory import Trajectory

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffd]")


def printable(text: str) -> str:
    """Control characters and undecodable bytes as visible escapes (random models emit them)."""
    return _CONTROL.sub(
        lambda m: f"\\x{ord(m.group(0)):02x}" if ord(m.group(0)) < 256 else "?", text
    )


def save_images(traj: Trajectory, folder: str | Path) -> list[Path]:
    """Write image k of the context as `image_k.png` (k = 1-based context number)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, img in enumerate(traj.images, start=1):
        path = folder / f"image_{k}.png"
        img.save(path)
        paths.append(path)
    return paths


def _header(traj: Trajectory, sample: Any, parsed: Any, index: int) -> list[str]:
    gold = getattr(sample, "answer", None)
    lines = [
        f"=== trajectory {index}: sample {traj.sample_id} [{getattr(sample, 'task', '?')}]",
        f"status={traj.status}  turns={traj.num_turns}  tool calls={len(traj.tool_calls)}  "
        f"tokens={len(traj.token_ids)} (sampled {traj.num_sampled_tokens})  images={len(traj.images)}",
        f"answer={traj.answer!r}  parsed={parsed!r}  gold={gold!r}",
    ]
    if traj.rewards:
        comps = "  ".join(f"{k}={v:.3f}" for k, v in traj.rewards.items())
        lines.append(f"reward={traj.reward:.3f}  ({comps})")
    return lines


def _with_images(
    text: str, first: int, paths: Sequence[Path], rel_to: Path | None
) -> tuple[str, int]:
    """Replace each IMAGE_PLACEHOLDER with the saved file of the next image."""
    out, k = [], first
    parts = text.split(IMAGE_PLACEHOLDER)
    for i, part in enumerate(parts):
        out.append(part)
        if i < len(parts) - 1:
            p = paths[k - 1] if k - 1 < len(paths) else None
            shown = (p.relative_to(rel_to) if rel_to and p else p) if p else "?"
            out.append(f"[image {k}: {shown}]")
            k += 1
    return "".join(out), k


def render_text(
    traj: Trajectory,
    sample: Any,
    image_paths: Sequence[Path],
    parsed: Any = None,
    index: int = 1,
    show_system: bool = False,
) -> str:
    lines = _header(traj, sample, parsed, index)
    k = 1
    for turn in traj.turns:
        if turn.role == "system" and not show_system:
            lines.append(
                f"[system] ({len(turn.text)} chars of instructions and tool schemas; in the HTML page)"
            )
            continue
        text, k = _with_images(printable(turn.text), k, image_paths, None)
        lines.append(f"[{turn.role}] {text}")
    for c in traj.tool_calls:
        region = f"  region={c.region}" if c.region else ""
        lines.append(
            f"  tool call (turn {c.turn + 1}): {c.name or '<malformed>'} {json.dumps(c.arguments)} -> "
            f"{'ok' if c.ok else 'error'}, {c.image_count} image(s){region}"
        )
    return "\n".join(lines)


def render_html(
    items: Sequence[tuple[Trajectory, Any, Sequence[Path], Any]], out_dir: str | Path, title: str
) -> str:
    """One page: per trajectory a header, each turn with its images inline, the tool calls."""
    out_dir = Path(out_dir)
    esc = html.escape
    body = [f"<h1>{esc(title)}</h1>"]
    for index, (traj, sample, paths, parsed) in enumerate(items, start=1):
        body.append("<section>")
        head = _header(traj, sample, parsed, index)
        body.append(f"<h2>{esc(head[0].strip('= '))}</h2>")
        body.append(
            f"<p class='st st-{esc(traj.status)}'>" + "<br>".join(esc(x) for x in head[1:]) + "</p>"
        )
        k = 1
        for turn in traj.turns:
            if turn.role == "system":
                body.append(
                    f"<details><summary>system prompt</summary><pre>{esc(turn.text)}</pre></details>"
                )
                continue
            parts = printable(turn.text).split(IMAGE_PLACEHOLDER)
            cells = []
            for i, part in enumerate(parts):
                cells.append(f"<pre>{esc(part)}</pre>")
                if i < len(parts) - 1:
                    if k - 1 < len(paths):
                        src = paths[k - 1].relative_to(out_dir).as_posix()
                        cells.append(
                            f"<figure><img src='{esc(src)}'><figcaption>image {k}</figcaption></figure>"
                        )
                    k += 1
            body.append(
                f"<div class='turn {esc(turn.role)}'><b>{esc(turn.role)}</b>{''.join(cells)}</div>"
            )
        if traj.tool_calls:
            rows = "".join(
                f"<tr><td>{c.turn + 1}</td><td>{esc(c.name or '<malformed>')}</td><td>{esc(json.dumps(c.arguments))}</td>"
                f"<td>{'ok' if c.ok else 'error'}</td><td>{esc(str(c.region or ''))}</td></tr>"
                for c in traj.tool_calls
            )
            body.append(
                f"<table><tr><th>turn</th><th>tool</th><th>arguments</th><th>result</th><th>region (dataset px)</th></tr>{rows}</table>"
            )
        body.append("</section>")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:auto}pre{white-space:pre-wrap;margin:2px 0}"
        ".turn{border-left:4px solid #ccc;padding:4px 8px;margin:6px 0}.assistant{border-color:#36c}"
        ".tool{border-color:#c93}.user{border-color:#3a3}figure{display:inline-block;margin:4px}"
        "img{max-width:224px;image-rendering:pixelated;border:1px solid #999}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px}.st-ok{color:#070}section{border-bottom:2px solid #333}"
    )
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{style}</style></head><body>{''.join(body)}</body></html>"
