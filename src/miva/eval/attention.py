"""Attention-to-image diagnostics: how much of its attention a model pays to the image
tokens while it writes each token, and whether tool results that bring new images
restore it (IMAgent's observation: attention to the image fades as reasoning grows; its
tools bring it back).

The pass runs after sampling, over finished trajectories, with the model switched to
eager attention (the only implementation that returns attention weights), so sampling
itself is unchanged. One trajectory at a time, forward hooks on the text decoder's
attention modules reduce each layer's [heads, L, L] weights to the rows that matter
before the next layer runs, so memory stays at one layer's attention matrix.

Definitions, for a trajectory with token ids x and loss mask m (m = 1 on sampled tokens):
- generated token t: m[t] = 1. It was produced by the query at position q = t - 1, so its
  attention row is A_l[h, t-1, :] (row-stochastic over the causal prefix).
- image share of t at layer l: sum over image-placeholder keys j of A_l[h, t-1, j],
  averaged over heads h; "averaged over layers" is the mean of that over l.
- turns: maximal runs of generated tokens. Run 0 is `before_tools`; a later run follows a
  tool result, `after_tools` when that result put new image tokens into the context
  (between the two runs), `after_text_tools` otherwise. `after_tool_<k>` is the run after
  the k-th image-bringing tool result.

Metrics (relative names; the runner prefixes `eval/<set>/`), each the mean over
trajectories of the per-trajectory mean share over that group's tokens (a trajectory
without tokens in the group does not count):
`attention/image_share/{all,before_tools,after_tools,after_text_tools,after_tool_<k>}`
(layer average) and `attention/image_share/layer_<l>/{all,before_tools,after_tools}`;
`attention/items` (trajectories analysed) and `attention/items_with_image_tools`.
The curve for the report: mean share (layer average) by generated-token position, for
tokens before tools and after image-bringing tools.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

BEFORE = "before_tools"
AFTER = "after_tools"
AFTER_TEXT = "after_text_tools"
PREFIX = "attention/image_share"


@dataclass
class Segment:
    """One run of generated tokens: [start, end) positions in the trajectory."""

    start: int
    end: int
    group: str  # BEFORE, AFTER or AFTER_TEXT
    tool_index: int = 0  # k for the run after the k-th image-bringing tool result


@dataclass
class TrajectoryAttention:
    """Per generated token (in order): its position among generated tokens, its group and
    its image share per layer (`shares[l][i]`)."""

    sample_id: str
    positions: list[int]
    groups: list[str]
    tool_index: list[int]
    shares: list[list[float]]  # [n_layers][n_generated]

    def layer_mean(self) -> list[float]:
        n_layers = len(self.shares)
        return [sum(col) / n_layers for col in zip(*self.shares, strict=True)] if n_layers else []


@dataclass
class AttentionSummary:
    metrics: dict[str, float]
    curve: dict[str, list[float]] = field(default_factory=dict)  # position, before, after


# ------------------------------------------------------------------------------ pure parts


def generated_segments(
    token_ids: Sequence[int], loss_mask: Sequence[int], image_token_id: int
) -> list[Segment]:
    """Runs of generated tokens and what came between them.

    Tokens: prompt P P, run "a a", tool result with an image I, run "b", text result T, run "c":
    mask 0 0 1 1 0 0 1 0 0 1 -> [(2,4) before], [(6,7) after, k=1], [(9,10) after_text].

    >>> [(s.start, s.end, s.group, s.tool_index) for s in generated_segments(
    ...     [5, 5, 1, 1, 9, 7, 2, 8, 8, 3], [0, 0, 1, 1, 0, 0, 1, 0, 0, 1], image_token_id=7)]
    [(2, 4, 'before_tools', 0), (6, 7, 'after_tools', 1), (9, 10, 'after_text_tools', 0)]
    """
    segments: list[Segment] = []
    t, n, k = 0, len(loss_mask), 0
    prev_end = None
    while t < n:
        if not loss_mask[t]:
            t += 1
            continue
        start = t
        while t < n and loss_mask[t]:
            t += 1
        if prev_end is None:
            segments.append(Segment(start, t, BEFORE))
        elif any(tok == image_token_id for tok in token_ids[prev_end:start]):
            k += 1
            segments.append(Segment(start, t, AFTER, k))
        else:
            segments.append(Segment(start, t, AFTER_TEXT))
        prev_end = t
    return segments


def image_share_rows(attn, query_rows, image_mask):
    """Share of each query row's attention mass on image keys, averaged over heads.

    `attn` [H, Q, K] (one sequence's post-softmax weights), `query_rows` [n] indices,
    `image_mask` [K] bool -> [n]. Rows are normalised by their own total, so the share is
    exact even where float error leaves a row a little off 1.
    """
    rows = attn[:, query_rows, :].float()  # [H, n, K]
    image = rows[:, :, image_mask].sum(-1)
    total = rows.sum(-1).clamp_min(1e-30)
    return (image / total).mean(0)


def summarize(profiles: Sequence[TrajectoryAttention], n_bins: int = 40) -> AttentionSummary:
    """Metrics (see the module docstring) and the report's curve."""
    groups: dict[str, list[float]] = defaultdict(list)
    layer_groups: dict[tuple[int, str], list[float]] = defaultdict(list)
    with_tools = 0
    for p in profiles:
        if not p.positions:
            continue
        avg = p.layer_mean()
        members: dict[str, list[int]] = defaultdict(list)
        for i, (g, k) in enumerate(zip(p.groups, p.tool_index, strict=True)):
            members["all"].append(i)
            members[g].append(i)
            if g == AFTER:
                members[f"after_tool_{k}"].append(i)
        with_tools += int(bool(members.get(AFTER)))
        for name, idx in members.items():
            groups[name].append(sum(avg[i] for i in idx) / len(idx))
            if name in ("all", BEFORE, AFTER):
                for layer, row in enumerate(p.shares):
                    layer_groups[(layer, name)].append(sum(row[i] for i in idx) / len(idx))
    metrics = {f"{PREFIX}/{name}": sum(v) / len(v) for name, v in groups.items()}
    for (layer, name), v in layer_groups.items():
        metrics[f"{PREFIX}/layer_{layer}/{name}"] = sum(v) / len(v)
    metrics["attention/items"] = float(sum(1 for p in profiles if p.positions))
    metrics["attention/items_with_image_tools"] = float(with_tools)
    return AttentionSummary(dict(sorted(metrics.items())), position_curve(profiles, n_bins))


def position_curve(profiles: Sequence[TrajectoryAttention], n_bins: int = 40) -> dict[str, list]:
    """Mean share (layer average) by generated-token position, binned into at most
    `n_bins` equal bins, separately for tokens before tools and after image-bringing tools;
    None where a bin has no token of that group."""
    longest = max((max(p.positions) + 1 for p in profiles if p.positions), default=0)
    if longest == 0:
        return {}
    width = max(1, -(-longest // n_bins))
    n = -(-longest // width)
    sums = {g: [0.0] * n for g in (BEFORE, AFTER)}
    counts = {g: [0] * n for g in (BEFORE, AFTER)}
    for p in profiles:
        for pos, g, share in zip(p.positions, p.groups, p.layer_mean(), strict=True):
            if g in sums:
                sums[g][pos // width] += share
                counts[g][pos // width] += 1
    curve: dict[str, list] = {"position": [b * width + (width - 1) / 2 for b in range(n)]}
    for g in (BEFORE, AFTER):
        curve[g] = [s / c if c else None for s, c in zip(sums[g], counts[g], strict=True)]
    return curve


# ------------------------------------------------------------------------------ model pass


def _text_attention_modules(model) -> list[Any]:
    """The self-attention module of every text decoder layer, in layer order."""
    for path in ("model.language_model", "language_model", "model"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        layers = getattr(obj, "layers", None) if obj is not None else None
        if layers is not None:
            return [layer.self_attn for layer in layers]
    raise ValueError(f"{type(model).__name__}: no text decoder layers found")


class eager_attention:
    """Context manager: the model runs with eager attention inside, its own after."""

    def __init__(self, model):
        self.model = model
        self.before = model.config._attn_implementation

    def __enter__(self):
        if self.before != "eager":
            self.model.set_attn_implementation("eager")
        return self.model

    def __exit__(self, *exc):
        if self.before != "eager":
            self.model.set_attn_implementation(self.before)


def trajectory_attention(model, processor, traj) -> TrajectoryAttention:
    """One forward pass over a finished trajectory; image share per layer per generated token."""
    import torch

    from miva.agent.forward import collate, model_inputs

    image_id = processor.token_id("<|image_pad|>")
    segments = generated_segments(traj.token_ids, traj.loss_mask, image_id)
    targets = [t for s in segments for t in range(s.start, s.end)]
    if not targets:
        return TrajectoryAttention(traj.sample_id, [], [], [], [])
    batch = collate([traj], processor)
    dev = next(model.parameters()).device
    rows = torch.tensor([t - 1 for t in targets], device=dev)
    image_mask = batch.input_ids[0].to(dev) == image_id
    per_layer: list[list[float]] = []

    def hook(_module, _args, output):
        weights = output[1]
        if weights is None:
            raise RuntimeError("attention weights are None: the pass needs eager attention")
        per_layer.append(image_share_rows(weights[0], rows, image_mask).tolist())

    handles = [m.register_forward_hook(hook) for m in _text_attention_modules(model)]
    try:
        with eager_attention(model), torch.no_grad():
            model(**model_inputs(model, batch), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    groups = [s.group for s in segments for _ in range(s.start, s.end)]
    tool_index = [s.tool_index for s in segments for _ in range(s.start, s.end)]
    return TrajectoryAttention(
        traj.sample_id, list(range(len(targets))), groups, tool_index, per_layer
    )


def diagnose(
    model, processor, trajectories: Sequence[Any], desc: str = "attention"
) -> AttentionSummary:
    """`trajectory_attention` over trajectories (progress bar), summarised."""
    from tqdm import tqdm

    profiles = [
        trajectory_attention(model, processor, t)
        for t in tqdm(trajectories, desc=desc, leave=False)
    ]
    return summarize(profiles)


def diagnose_run(run, sets: Sequence[Any], cfg: Any) -> None:
    """The eval hook: load `run.model` once with eager attention, analyse the first
    trajectory of up to `evaluate.attention_max_items` items per set, and add the metrics
    (`<set>/attention/...`) and the report curve (`run.attention[<set>]`) to the run."""
    import torch

    from miva.agent.model import load_model

    model, processor = load_model(
        run.model,
        family=cfg.model.family,
        dtype=cfg.model.dtype,
        device="cuda" if torch.cuda.is_available() else None,
        min_pixels=cfg.model.min_pixels,
        max_pixels=cfg.model.max_pixels,
        attn_implementation="eager",
    )
    cap = cfg.evaluate.attention_max_items
    for es in sets:
        samples = es.samples if cap is None else es.samples[:cap]
        trajs = [run.trajectories[(es.name, s.id)] for s in samples]
        summary = diagnose(model, processor, trajs, desc=f"attention {es.name} ({run.model})")
        run.metrics.update({f"{es.name}/{k}": v for k, v in summary.metrics.items()})
        run.attention[es.name] = summary.curve


def attention_plot(curves: dict[str, dict], title: str) -> str | None:
    """Base64 PNG: image share over generated-token position, before vs after tools, one
    pair of lines per model (`curves`: model -> curve); None when no curve has points."""
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {name: c for name, c in curves.items() if c and c.get("position")}
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for style, (name, curve) in zip(("-", "--", ":"), curves.items(), strict=False):
        for group, color, label in (
            (BEFORE, "tab:blue", "before tools"),
            (AFTER, "tab:orange", "after image tools"),
        ):
            points = [
                (x, y)
                for x, y in zip(curve["position"], curve[group], strict=True)
                if y is not None
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, style, color=color, marker=".", label=f"{label} ({name})")
    ax.set_xlabel("generated-token position")
    ax.set_ylabel("attention share on image tokens")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()
