"""A scripted policy: emits given text instead of sampling (tests, gold trajectories for SFT).

`ScriptedEngine(processor, script)` where `script(key, turn) -> str` returns the
assistant text of trajectory `key` at turn `turn`. The text is tokenised once, here,
and those tokens are the "sampled" tokens (log-prob 0.0: no model was asked).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from miva.agent.engines.base import GenRequest, GenResult


class ScriptedEngine:
    def __init__(self, processor, script: Callable[[Any, int], str]):
        self.tokenizer = processor.tokenizer
        self.script = script
        self.requests: list[GenRequest] = []  # every request seen, for inspection

    def generate(self, requests: list[GenRequest], seed: int) -> list[GenResult]:
        out = []
        for r in requests:
            self.requests.append(r)
            ids = self.tokenizer.encode(self.script(r.key, r.turn), add_special_tokens=False)
            finished = len(ids) <= r.max_new_tokens
            ids = ids[: r.max_new_tokens]
            out.append(GenResult(ids, [0.0] * len(ids), finished))
        return out
