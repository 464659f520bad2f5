"""Tiny text-only models for the trainer tests (the VLM comes from miva.agent)."""

from __future__ import annotations

import pytest


def tiny_qwen2(seed: int = 0, vocab: int = 64):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
    )
    return Qwen2ForCausalLM(cfg).float()


def word_tokenizer(vocab: int = 64):
    """A word-level tokenizer whose words are t0..t{vocab-1} (t1 pad, t2 eos)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t0"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="t1", eos_token="t2")


@pytest.fixture
def tiny_lm():
    return tiny_qwen2()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """24 synthesized two-image samples of 56 px (a module may define its own `dataset`)."""
    from miva.config import load_config
    from miva.data.synth.build import run_synth

    cfg = load_config(
        "tiny-cpu",
        ["synthesize.n=24", "synthesize.image_size=56", "synthesize.images_per_sample=[2, 2]"],
    )
    out = tmp_path_factory.mktemp("data") / "ds"
    run_synth(cfg.synthesize, out, progress=False)
    return str(out)
