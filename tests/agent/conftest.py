"""Fixtures for the agent tests: the tiny-random preset is built once per session."""

from __future__ import annotations

import pytest
import torch

# The shared CI box has 2 cores and many processes: one intra-op thread is several times
# faster than two under contention (see bench/rollout.py).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from miva.agent.model import build_tiny

    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-random", seed=0)


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    """(model, processor) of the tiny preset, in eval mode."""
    from miva.agent.model import load_model

    return load_model(str(tiny_dir))


@pytest.fixture(scope="session")
def processor(tiny):
    return tiny[1]
