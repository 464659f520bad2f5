"""Tool-use gain (IMAgent, after DeepEyes): a bonus only when a tool was used AND the answer is correct.

A bonus paid regardless of correctness invites reward hacking (call a tool, answer anything).
With ``cfg.tool_gain_requires_evidence`` the bonus also needs a zoom whose region overlaps
an evidence box of the sample on the same image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from miva.rl.rewards._common import accuracy_of
from miva.scoring import box_iou, is_correct


def zoom_on_evidence(call: Any, sample: Any) -> bool:
    """A successful zoom whose region overlaps (positive intersection) an evidence box of the
    sample on the same image.

    >>> from types import SimpleNamespace as NS
    >>> ev = [NS(image=1, bbox=(10, 10, 20, 20))]
    >>> zoom_on_evidence(NS(ok=True, region={"image": 1, "bbox": [0, 0, 15, 15]}), NS(evidence=ev))
    True
    >>> zoom_on_evidence(NS(ok=True, region={"image": 1, "bbox": [30, 0, 45, 15]}), NS(evidence=ev))
    False
    """
    if not call.ok or call.region is None:
        return False
    return any(
        int(call.region["image"]) == int(ev.image) and box_iou(call.region["bbox"], ev.bbox) > 0
        for ev in sample.evidence
    )


def zoom_hits_evidence(traj: Any, sample: Any) -> bool:
    """Some zoom of the trajectory is on the evidence (`zoom_on_evidence`).

    >>> from types import SimpleNamespace as NS
    >>> ev = [NS(image=1, bbox=(10, 10, 20, 20))]
    >>> call = NS(name="zoom", ok=True, region={"image": 1, "bbox": [0, 0, 15, 15]})
    >>> zoom_hits_evidence(NS(tool_calls=[call]), NS(evidence=ev))
    True
    >>> call.region = {"image": 2, "bbox": [0, 0, 15, 15]}
    >>> zoom_hits_evidence(NS(tool_calls=[call]), NS(evidence=ev))
    False
    """
    return any(zoom_on_evidence(c, sample) for c in traj.tool_calls)


def tool_gain_reward(trajectories: Sequence[Any], samples: Sequence[Any], cfg: Any) -> list[float]:
    """1.0 when a tool call succeeded and the answer is correct (and, optionally, the zoom hit evidence).

    >>> from types import SimpleNamespace as NS
    >>> cfg = NS(number_tolerance=0.0, iou_threshold=None, tool_gain_requires_evidence=False)
    >>> s = NS(answer_type="number", answer=3, choices=None, evidence=[])
    >>> call = NS(name="view", ok=True, region=None)
    >>> def traj(text, calls): return NS(turns=[NS(role="assistant", text=text)], tool_calls=calls)
    >>> tool_gain_reward(
    ...     [traj("<answer>3</answer>", [call]), traj("<answer>4</answer>", [call]),
    ...      traj("<answer>3</answer>", [])], [s] * 3, cfg)
    [1.0, 0.0, 0.0]
    """
    out = []
    for traj, sample in zip(trajectories, samples, strict=True):
        used = any(call.ok for call in traj.tool_calls)
        gain = used and is_correct(accuracy_of(traj, sample, cfg))
        if gain and cfg.tool_gain_requires_evidence:
            gain = zoom_hits_evidence(traj, sample)
        out.append(float(gain))
    return out
