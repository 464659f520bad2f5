"""The docstring examples of the scoring primitives, run as tests (hand-computed values)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import miva.scoring as scoring

MODULES = [f"miva.scoring.{m.name}" for m in pkgutil.iter_modules(scoring.__path__)]


def test_every_scoring_module_is_covered():
    assert set(MODULES) == {
        "miva.scoring.aggregate",
        "miva.scoring.answers",
        "miva.scoring.boxes",
        "miva.scoring.parse",
        "miva.scoring.text",
    }


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
