"""Run the docstring examples of the reward functions and the math modules as tests."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import miva.rl.rewards as rewards_pkg

MODULES = [f"miva.rl.rewards.{m.name}" for m in pkgutil.iter_modules(rewards_pkg.__path__)] + [
    "miva.rl.advantages",
    "miva.rl.losses",
    "miva.rl.masks",
    "miva.rl.distributed",
    "miva.rl.flops",
    "miva.rl.grpo",
    "miva.rl.schedule",
    "miva.agent.tools.zoom",
    "miva.eval.verdict",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
