"""Text answers: SQuAD normalisation, exact match, token F1, and CJK tokenisation.

Pure functions of strings (stdlib only). A reference answer may be one string or a list of
accepted strings; EM and F1 take the maximum over the references.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_text(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation and articles, squeeze spaces.

    >>> normalize_text("The  Red-Car!")
    'redcar'
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _references(answer: Any) -> list[str]:
    if isinstance(answer, str):
        return [answer]
    if isinstance(answer, Sequence):
        return [str(a) for a in answer]
    return [str(answer)]


def exact_match(prediction: str, answer: str | Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised reference (max over references).

    >>> exact_match("the Eiffel Tower.", ["Eiffel tower", "tour Eiffel"])
    1.0
    """
    pred = normalize_text(prediction)
    return max((1.0 if pred == normalize_text(r) else 0.0) for r in _references(answer))


def token_f1(prediction: str, answer: str | Sequence[str]) -> float:
    """SQuAD token F1, max over references.

    pred "red big car" vs ref "big red truck": common = {red, big} -> P = 2/3, R = 2/3, F1 = 2/3.

    >>> round(token_f1("red big car", "big red truck"), 4)
    0.6667
    >>> token_f1("", "x")
    0.0
    """
    pred_tokens = normalize_text(prediction).split()
    best = 0.0
    for ref in _references(answer):
        ref_tokens = normalize_text(ref).split()
        if not pred_tokens or not ref_tokens:
            best = max(best, float(pred_tokens == ref_tokens))
            continue
        common = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
        if common == 0:
            continue
        precision, recall = common / len(pred_tokens), common / len(ref_tokens)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF  # CJK unified ideographs
        or 0x3400 <= cp <= 0x4DBF  # extension A
        or 0x20000 <= cp <= 0x2A6DF  # extension B
        or 0xF900 <= cp <= 0xFAFF  # compatibility ideographs
        or 0x3040 <= cp <= 0x30FF  # hiragana, katakana
        or 0xAC00 <= cp <= 0xD7AF  # hangul syllables
    )


def cjk_spaced(text: str) -> str:
    """Each CJK character becomes its own token; non-ASCII punctuation (，。！) is dropped
    (SQuAD normalisation only drops ASCII punctuation).

    >>> cjk_spaced("北京是首都。")
    '北 京 是 首 都'
    >>> cjk_spaced("Tokyo 东京")
    'Tokyo 东 京'
    """
    out: list[str] = []
    for ch in text:
        if ord(ch) > 127 and unicodedata.category(ch).startswith("P"):
            out.append(" ")
        elif _is_cjk(ch):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    return " ".join("".join(out).split())
