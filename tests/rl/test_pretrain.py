"""Caption pretraining: batches, the model card and its checksum, the shipped preset."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace as NS

import pytest

from miva.agent.model import PRESET_DIR, verify_card, weights_sha256
from miva.errors import ConfigError
from miva.rl.pretrain import length_batches


def test_length_batches_group_similar_lengths():
    trajs = [NS(token_ids=[0] * n) for n in (5, 50, 6, 51, 7, 52, 8, 53)]
    batches = length_batches(trajs, 4, random.Random(0))
    assert sorted(sorted(len(t.token_ids) for t in b) for b in batches) == [
        [5, 6, 7, 8],
        [50, 51, 52, 53],
    ]


def test_card_checksum_is_verified(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "card.json").write_text(json.dumps({"weights_sha256": weights_sha256(tmp_path)}))
    assert verify_card(tmp_path)["weights_sha256"] == weights_sha256(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"other weights")
    with pytest.raises(ConfigError, match="does not match its card"):
        verify_card(tmp_path)
    (tmp_path / "card.json").unlink()
    with pytest.raises(ConfigError, match="incomplete"):
        verify_card(tmp_path)


def test_the_shipped_preset_matches_its_card_and_loads():
    from miva.agent.model import load_model

    folder = PRESET_DIR / "tiny-pretrained"
    card = verify_card(folder)
    assert (folder / "model.safetensors").stat().st_size <= 20 * 2**20
    for name in ("config.json", "tokenizer.json", "preprocessor_config.json", "README.md"):
        assert (folder / name).exists(), name
    assert card["held_out"]["description_accuracy"] > 0
    assert card["rebuild"] == "make pretrained-preset"
    model, processor = load_model("tiny-pretrained")
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    assert processor.token_id("<|image_pad|>") >= 0


@pytest.mark.slow
def test_pretrain_runs_and_writes_a_card(tmp_path):
    from miva.config import load_config
    from miva.rl.pretrain import pretrain

    cfg = load_config(
        "tiny-cpu",
        [
            "pretrain.steps=3",
            "pretrain.batch_size=4",
            "pretrain.chunk=8",
            "pretrain.eval_items=4",
            "pretrain.eval_every=0",
            "pretrain.max_new_tokens=24",
        ],
    )
    res = pretrain(cfg, str(tmp_path / "pt"), progress=False, log=lambda _: None)
    assert res.steps == 3 and res.final_loss == res.final_loss  # finite
    card = verify_card(tmp_path / "pt")
    assert card["training"]["steps"] == 3 and card["held_out"]["items"] == 4.0
    assert "make pretrained-preset" in (tmp_path / "pt" / "README.md").read_text()


def test_pretrain_command_is_registered(capsys):
    from miva.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["pretrain", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--minutes" in out and "--out" in out
