"""The LLM-judge reward for open text answers: prompt, strict parser, reward function.

Text answers (`answer_type == "text"`) have no rule that knows "a crimson car" is right
for "red car"; DeepEyes and verl's reward models score them with a language model. Here
the judge is any OpenAI-compatible endpoint (`reward.judge.url`, e.g. `miva serve` or
`vllm serve`); the client with its disk cache, retries and counters is
`miva.rl.judge.Judge`, handed in as ``cfg.judge``. This module stays pure: no I/O.

For every trajectory: a text answer is scored by the judge; any other answer type, or a
trajectory without an answer, by the rule scorer (`accuracy`). When the judge fails or
replies with anything but one number in [0, 1], the rule score stands in and the judge
counts a fallback (`train/judge/fallback_rate`); a step never fails because of the judge.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from miva.rl.rewards._common import accuracy_of, prediction

PLACEHOLDERS = ("question", "references", "answer")
_PLACEHOLDER = re.compile(r"\{(question|references|answer)\}")
_THINK = re.compile(r"^\s*<think>.*?</think>", re.S)
_ANSWER_TAG = re.compile(r"^<answer>(.*)</answer>$", re.S)
# a plain decimal in [0, 1]: 0, 1, 0.5, .5, 1.0 (no sign, exponent, percent or fraction)
_SCORE = re.compile(r"(?:0(?:\.[0-9]+)?|1(?:\.0+)?|\.[0-9]+)")


def render_prompt(
    template: str, question: str, references: Sequence[str], answer: str, max_answer_chars: int
) -> str:
    """Fill {question}, {references} and {answer} in one pass (text that itself contains
    "{answer}" is not substituted again); the answer is cut to `max_answer_chars`.

    >>> render_prompt("Q={question} R={references} A={answer}", "2+2?", ["4", "four"], "{question}", 50)
    'Q=2+2? R="4" | "four" A={question}'
    """
    values = {
        "question": question,
        "references": " | ".join(f'"{r}"' for r in references),
        "answer": answer[:max_answer_chars],
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def parse_score(reply: str | None) -> float | None:
    """The judge's score, or None unless the reply is exactly one number in [0, 1]
    (optionally after a <think> block and inside one <answer> tag).

    >>> [parse_score(r) for r in ["0.8", " 1 ", "<answer>.25</answer>", "<think>hm</think>0"]]
    [0.8, 1.0, 0.25, 0.0]
    >>> [parse_score(r) for r in ["0.8 because", "1.5", "-0", "80%", "3/4", "nan", "", None]]
    [None, None, None, None, None, None, None, None]
    """
    if reply is None:
        return None
    text = _THINK.sub("", reply, count=1).strip()
    tag = _ANSWER_TAG.match(text)
    if tag is not None:
        text = tag.group(1).strip()
    if len(text) > 32 or _SCORE.fullmatch(text) is None:
        return None
    value = float(text)
    return value if math.isfinite(value) and 0.0 <= value <= 1.0 else None


def references_of(sample: Any) -> list[str]:
    answer = sample.answer
    if isinstance(answer, (list, tuple)):
        return [str(a) for a in answer]
    return [str(answer)]


def judge_reward(trajectories: Sequence[Any], samples: Sequence[Any], cfg: Any) -> list[float]:
    """Judge score for text answers, rule accuracy for the rest and as the fallback.

    ``cfg.judge`` is the client: ``score(prompts) -> list[float | None]`` (None = no usable
    judgement) and ``count(items, fallbacks)``; ``cfg.judge.cfg`` its `JudgeConfig`.

    >>> from types import SimpleNamespace as NS
    >>> class Fixed:  # a judge that replies 0.5 to the first prompt and nothing usable after
    ...     cfg = NS(prompt="{question}{references}{answer}", max_answer_chars=100)
    ...     def score(self, prompts): return [0.5] + [None] * (len(prompts) - 1)
    ...     def count(self, items, fallbacks): self.last = (items, fallbacks)
    >>> j = Fixed()
    >>> cfg = NS(judge=j, number_tolerance=0.0, iou_threshold=None)
    >>> text = NS(answer_type="text", answer=["red car"], choices=None, question="what?")
    >>> num = NS(answer_type="number", answer=3, choices=None, question="how many?")
    >>> said = lambda a: NS(turns=[NS(role="assistant", text=f"<answer>{a}</answer>")])
    >>> judge_reward([said("crimson car"), said("red car"), said("3")], [text, text, num], cfg)
    [0.5, 1.0, 1.0]
    >>> j.last  # two text answers went to the judge; the second fell back to token F1
    (2, 1)
    """
    judge = cfg.judge
    scores = [accuracy_of(t, s, cfg) for t, s in zip(trajectories, samples, strict=True)]
    asks: list[int] = []
    prompts: list[str] = []
    for i, (traj, sample) in enumerate(zip(trajectories, samples, strict=True)):
        if sample.answer_type != "text":
            continue
        answer = prediction(traj, sample, cfg)
        if answer is None:
            continue  # no answer: 0 by rule, nothing to judge
        asks.append(i)
        prompts.append(
            render_prompt(
                judge.cfg.prompt,
                sample.question,
                references_of(sample),
                answer,
                judge.cfg.max_answer_chars,
            )
        )
    if not prompts:
        judge.count(0, 0)
        return scores
    try:
        judged = judge.score(prompts)
    except Exception:  # the client should not raise; a step must not die if it does
        judged = [None] * len(prompts)
    fallbacks = 0
    for i, value in zip(asks, judged, strict=True):
        if value is None:
            fallbacks += 1
        else:
            scores[i] = float(value)
    judge.count(len(prompts), fallbacks)
    return scores
