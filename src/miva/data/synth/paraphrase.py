"""Paraphraser (optional, off by default): rewrites question stems through an
OpenAI-compatible chat endpoint (for example `vllm serve ... --port 8000`).

Only the stem is rewritten; options and the answer-format instruction are added after,
and the answer never passes through the model. A rewrite is accepted only when it keeps
every protected token of the original (numbers such as image numbers, quoted labels) and
stays one short sentence or two; otherwise, or when the server fails, the template
question is kept and the reason is logged.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from miva.config import ParaphraseConfig

log = logging.getLogger(__name__)

SYSTEM = (
    "You rewrite questions about a set of images. Keep the meaning exactly, keep every "
    "number and every quoted label unchanged, do not answer the question, do not add "
    "options. Reply with the rewritten question only."
)
_PROTECTED = re.compile(r"'[^']+'|\d+")


def protected_tokens(text: str) -> list[str]:
    """Tokens a rewrite must keep: quoted labels and numbers ("image 3", "'K7'")."""
    return _PROTECTED.findall(text)


def accept(original: str, rewrite: str) -> str | None:
    """The reason to reject `rewrite`, or None when it is acceptable."""
    text = rewrite.strip()
    if not text:
        return "empty rewrite"
    if len(text) > 3 * len(original) + 40 or "\n" in text:
        return "rewrite too long or multi-line"
    have = protected_tokens(text)
    for token in protected_tokens(original):
        if token not in have:
            return f"rewrite lost {token!r}"
        have.remove(token)
    return None


def chat(cfg: ParaphraseConfig, question: str) -> str:
    body = json.dumps(
        {
            "model": cfg.model,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": question},
            ],
            "temperature": 0.0,
            "max_tokens": 128,
        }
    ).encode()
    req = urllib.request.Request(
        cfg.endpoint.rstrip("/") + "/chat/completions",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=cfg.timeout_s) as resp:
        payload = json.loads(resp.read())
    return str(payload["choices"][0]["message"]["content"])


def paraphrase_one(cfg: ParaphraseConfig, question: str) -> str | None:
    """The accepted rewrite, or None (template kept) with the reason logged."""
    try:
        rewrite = chat(cfg, question)
    except (urllib.error.URLError, TimeoutError, OSError, KeyError, IndexError, ValueError) as exc:
        log.warning("paraphrase failed for %r (%s); keeping the template", question, exc)
        return None
    reason = accept(question, rewrite)
    if reason:
        log.info("paraphrase rejected for %r: %s", question, reason)
        return None
    return rewrite.strip()


def paraphrase_all(
    questions: list[str], cfg: ParaphraseConfig, progress: bool = True, threads: int = 8
) -> list[str | None]:
    from tqdm import tqdm

    with ThreadPoolExecutor(threads) as pool:
        results = pool.map(lambda q: paraphrase_one(cfg, q), questions)
        return list(tqdm(results, total=len(questions), desc="paraphrase", disable=not progress))
