"""The tiny-random preset: build, save, reload; the tokenizer it carries."""

from __future__ import annotations

import torch

from miva.agent.tokenizer import QWEN_SPECIAL_TOKENS, TOOL_TAGS, synthetic_corpus


def test_corpus_is_deterministic():
    assert synthetic_corpus(seed=3, lines=50) == synthetic_corpus(seed=3, lines=50)
    assert synthetic_corpus(seed=3, lines=50) != synthetic_corpus(seed=4, lines=50)


def test_tokenizer_keeps_special_tokens_and_tags_whole(processor):
    tok = processor.tokenizer
    for t in (*QWEN_SPECIAL_TOKENS, *TOOL_TAGS):
        ids = tok.encode(t, add_special_tokens=False)
        assert len(ids) == 1, t
        assert tok.decode(ids) == t
    text = (
        '<tool_call>{"name": "zoom", "arguments": {"image": 2, "bbox": [1, 2, 30, 40]}}</tool_call>'
    )
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_tiny_has_a_few_million_parameters_and_qwen25_architecture(tiny):
    model, processor = tiny
    n = sum(p.numel() for p in model.parameters())
    assert 1e6 < n < 1e7
    assert model.config.model_type == "qwen2_5_vl"
    assert model.config.image_token_id == processor.token_id("<|image_pad|>")
    assert model.get_input_embeddings().weight.shape[0] >= len(processor.tokenizer)


def test_save_and_reload_gives_identical_weights_and_logits(tiny, tmp_path):
    from miva.agent.model import load_model, save_model

    model, processor = tiny
    save_model(model, processor, tmp_path / "copy")
    model2, processor2 = load_model(str(tmp_path / "copy"))
    for (n1, p1), (n2, p2) in zip(
        model.state_dict().items(), model2.state_dict().items(), strict=True
    ):
        assert n1 == n2 and torch.equal(p1, p2), n1
    ids = torch.tensor([processor.tokenizer.encode("How many red circles?")])
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, model2(input_ids=ids).logits)
    assert processor2.tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    assert processor2.image_processor.size == processor.image_processor.size


def test_build_is_deterministic_for_a_seed(tiny, tmp_path):
    from miva.agent.model import build_tiny, load_model

    again, _ = load_model(str(build_tiny(tmp_path / "again", seed=0)))
    model, _ = tiny
    w1 = model.state_dict()
    for name, w in again.state_dict().items():
        assert torch.equal(w, w1[name]), name


def test_unknown_model_is_a_clear_error(tmp_path):
    import pytest

    from miva.agent.model import resolve
    from miva.errors import ConfigError

    with pytest.raises(ConfigError, match="not a save_pretrained"):
        resolve(str(tmp_path))
    with pytest.raises(ConfigError, match="tiny-random"):
        resolve("no-such-model")
