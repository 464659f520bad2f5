"""`search(query)`: top-k passages from a local JSONL corpus ranked by BM25, or from an
HTTP backend behind the same interface.

BM25 (Robertson & Zaragoza), for query terms q and document d:
    score(d) = sum_q idf(q) * tf(q,d) * (k1 + 1) / (tf(q,d) + k1 * (1 - b + b * |d| / avgdl))
    idf(q)   = ln(1 + (N - df(q) + 0.5) / (df(q) + 0.5))
with k1 = 1.5, b = 0.75.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from miva.agent.tools.base import Tool, ToolArgumentError, ToolContext, ToolResult
from miva.errors import DataError

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


@dataclass
class Passage:
    id: str
    text: str
    title: str = ""
    score: float = 0.0


class BM25:
    def __init__(self, passages: list[Passage], k1: float = 1.5, b: float = 0.75):
        self.passages, self.k1, self.b = passages, k1, b
        self.docs = [Counter(tokenize(p.title + " " + p.text)) for p in passages]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.avgdl = (sum(self.lengths) / len(self.lengths)) if self.lengths else 0.0
        df: Counter[str] = Counter()
        for d in self.docs:
            df.update(d.keys())
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}

    def scores(self, query: str) -> list[float]:
        terms = tokenize(query)
        out = []
        for d, dl in zip(self.docs, self.lengths, strict=True):
            s = 0.0
            for t in terms:
                tf = d.get(t, 0)
                if tf:
                    s += (
                        self.idf[t]
                        * tf
                        * (self.k1 + 1)
                        / (tf + self.k1 * (1 - self.b + self.b * dl / self.avgdl))
                    )
            out.append(s)
        return out

    def top(self, query: str, k: int) -> list[Passage]:
        scored = sorted(enumerate(self.scores(query)), key=lambda x: (-x[1], x[0]))
        return [
            Passage(self.passages[i].id, self.passages[i].text, self.passages[i].title, s)
            for i, s in scored[:k]
            if s > 0
        ]


def load_corpus(path: str | Path) -> list[Passage]:
    """{id, text[, title]} per line; a bad line is an error naming the line."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"search corpus {path} does not exist")
    out = []
    with open(path) as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                out.append(Passage(str(row["id"]), str(row["text"]), str(row.get("title", ""))))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(
                    f"{path}, line {i}: expected {{id, text[, title]}} JSON ({exc!r})"
                ) from exc
    return out


class HTTPBackend:
    """POST {"query", "top_k"} to `endpoint`; expects {"results": [{id, text, title?}]}."""

    def __init__(self, endpoint: str, timeout_s: float = 10.0):
        self.endpoint, self.timeout_s = endpoint, timeout_s

    def top(self, query: str, k: int) -> list[Passage]:
        import requests

        try:
            r = requests.post(
                self.endpoint, json={"query": query, "top_k": k}, timeout=self.timeout_s
            )
            r.raise_for_status()
            rows = r.json()["results"]
            return [
                Passage(
                    str(x["id"]), str(x["text"]), str(x.get("title", "")), float(x.get("score", 0))
                )
                for x in rows[:k]
            ]
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            raise ToolArgumentError(
                f"the search backend failed ({type(exc).__name__}: {exc})"
            ) from exc


class Search(Tool):
    name = "search"
    description = "Search a text corpus; returns the top passages for the query."
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "maxLength": 500, "description": "search query"}
        },
        "required": ["query"],
        "additionalProperties": False,
    }

    def __init__(self, backend: Any, top_k: int = 3, passage_chars: int = 400):
        self.backend, self.top_k, self.passage_chars = backend, top_k, passage_chars

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        query = arguments["query"].strip()
        if not tokenize(query):
            raise ToolArgumentError("the query has no words")
        hits = self.backend.top(query, self.top_k)
        if not hits:
            return ToolResult(True, "no passage matches the query")
        lines = [
            f"[{i}] {p.title + ': ' if p.title else ''}{p.text[: self.passage_chars]}"
            for i, p in enumerate(hits, 1)
        ]
        return ToolResult(True, "\n".join(lines))
