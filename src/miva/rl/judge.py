"""The LLM-judge client: OpenAI-compatible requests, a disk cache, retries, counters.

`Judge(cfg.reward.judge).score(prompts) -> list[float | None]` sends each prompt as one
user message to ``{url}/chat/completions`` (``concurrency`` requests in flight), parses
the reply strictly (`rewards.judge.parse_score`) and returns None for anything unusable:
a connection error, a timeout or a 429/5xx after ``retries`` retries with exponential
backoff, another 4xx, a reply that is not one number in [0, 1].

Judgements are cached on disk (``cache_dir``), one JSON file per key, where the key is
the SHA-256 of (model, prompt, temperature, max_tokens): the same question, references
and answer never cost a second request, across steps and re-runs. Replies that do not
parse are cached too (at temperature 0 the judge would say the same again); failed
requests are not.

Counters since the last `drain_metrics()` (logged each GRPO step):
`train/judge/items` (text answers judged), `train/judge/requests` (HTTP requests sent,
retries included), `train/judge/cache_hit_rate`, `train/judge/fallback_rate` (share of
judged answers that fell back to the rule score).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from miva.rl.rewards.judge import parse_score

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class Judge:
    def __init__(self, cfg: Any) -> None:
        import httpx2

        self.cfg = cfg
        headers = {}
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env)
            if key:
                headers["Authorization"] = f"Bearer {key}"
        self.endpoint = cfg.url.rstrip("/") + "/chat/completions"
        self.http = httpx2.Client(timeout=cfg.timeout_s, headers=headers)
        self.cache = Path(cfg.cache_dir) if cfg.cache_dir else None
        self._lock = threading.Lock()
        self._counts = {"items": 0, "fallbacks": 0, "requests": 0, "cache_hits": 0, "lookups": 0}

    # ------------------------------------------------------------------ cache
    def key(self, prompt: str) -> str:
        blob = json.dumps(
            [self.cfg.model, prompt, self.cfg.temperature, self.cfg.max_tokens], ensure_ascii=False
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        assert self.cache is not None
        return self.cache / key[:2] / f"{key}.json"

    def _cached(self, key: str) -> dict[str, Any] | None:
        if self.cache is None:
            return None
        try:
            return json.loads(self._path(key).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def _store(self, key: str, reply: str) -> None:
        if self.cache is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as fh:
            json.dump({"model": self.cfg.model, "reply": reply}, fh)
        os.replace(tmp, path)  # atomic: concurrent writers of one key leave one whole file

    # ------------------------------------------------------------------ requests
    def _request(self, prompt: str) -> str | None:
        """The judge's reply text, or None after the retries."""
        import httpx2

        body = {
            "model": self.cfg.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens,
        }
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
            with self._lock:
                self._counts["requests"] += 1
            try:
                resp = self.http.post(self.endpoint, json=body)
            except httpx2.HTTPError as exc:
                log.warning("judge request failed (%s), attempt %d", exc, attempt + 1)
                continue
            if resp.status_code in RETRY_STATUS:
                log.warning("judge answered HTTP %d, attempt %d", resp.status_code, attempt + 1)
                continue
            if resp.status_code != 200:
                log.warning("judge answered HTTP %d: %s", resp.status_code, resp.text[:300])
                return None
            try:
                content = resp.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                log.warning("judge reply is not a chat completion: %s", resp.text[:300])
                return None
            return content if isinstance(content, str) else None
        return None

    def _one(self, prompt: str) -> float | None:
        key = self.key(prompt)
        hit = self._cached(key)
        with self._lock:
            self._counts["lookups"] += 1
            self._counts["cache_hits"] += hit is not None
        if hit is not None:
            return parse_score(hit.get("reply"))
        reply = self._request(prompt)
        if reply is None:
            return None
        self._store(key, reply)
        return parse_score(reply)

    def score(self, prompts: list[str]) -> list[float | None]:
        """One score (or None) per prompt; never raises."""
        if not prompts:
            return []

        def safe(prompt: str) -> float | None:
            try:
                return self._one(prompt)
            except Exception as exc:  # a judge problem must never end a training step
                log.warning("judge failed: %s: %s", type(exc).__name__, exc)
                return None

        workers = min(self.cfg.concurrency, len(prompts))
        if workers == 1:
            return [safe(p) for p in prompts]
        with ThreadPoolExecutor(workers, thread_name_prefix="miva-judge") as pool:
            return list(pool.map(safe, prompts))

    # ------------------------------------------------------------------ counters
    def count(self, items: int, fallbacks: int) -> None:
        with self._lock:
            self._counts["items"] += items
            self._counts["fallbacks"] += fallbacks

    def drain_metrics(self) -> dict[str, float]:
        """The counters since the last call, as `train/judge/*` metrics; resets them."""
        with self._lock:
            c, self._counts = self._counts, dict.fromkeys(self._counts, 0)
        return {
            "train/judge/items": float(c["items"]),
            "train/judge/requests": float(c["requests"]),
            "train/judge/cache_hit_rate": c["cache_hits"] / c["lookups"] if c["lookups"] else 0.0,
            "train/judge/fallback_rate": c["fallbacks"] / c["items"] if c["items"] else 0.0,
        }

    def close(self) -> None:
        self.http.close()
