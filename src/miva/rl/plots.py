"""Reward and accuracy curves as PNG (matplotlib, Agg), logged to MLflow when a run is active."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CURVES = (
    ("train/reward_mean", "reward (mean, trained batch)"),
    ("train/accuracy", "accuracy (trained batch, after dynamic sampling)"),
    ("rollout/drawn/accuracy", "accuracy (every group drawn)"),
    ("rollout/drawn/zoom_on_evidence", "zooms on the evidence (share)"),
    ("train/kl", "KL to reference"),
    ("train/entropy", "entropy"),
    ("rollout/tool_call_rate", "tool-call rate"),
    ("rollout/response_tokens", "response tokens"),
)


def _smooth(values: Sequence[float], k: int = 5) -> list[float]:
    out, acc = [], []
    for v in values:
        acc.append(v)
        acc = acc[-k:]
        out.append(sum(acc) / len(acc))
    return out


def plot_curves(
    history: Sequence[dict[str, Any]], out: str | Path, title: str = "GRPO"
) -> Path | None:
    """One PNG with a panel per curve that has data; returns its path (None without data)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(key, label) for key, label in CURVES if any(key in row for row in history)]
    if not panels:
        return None
    cols = 2
    rows = (len(panels) + 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(10, 3 * rows), squeeze=False)
    for ax, (key, label) in zip(axes.flat, panels, strict=False):
        pts = [(r["step"], r[key]) for r in history if key in r]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        ax.plot(xs, ys, alpha=0.35, color="C0")
        ax.plot(xs, _smooth(ys), color="C0")
        ax.set_title(label)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None and mlflow.active_run() is not None:
        mlflow.log_artifact(str(path))
    return path
