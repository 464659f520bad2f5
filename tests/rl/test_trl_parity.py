"""Parity with TRL's GRPOTrainer: same tiny model, fixed completions and advantages ->
the same loss and gradients for its `grpo`, `dr_grpo` and `dapo` loss types.

TRL is a dev dependency and a comparison baseline only; we call its `compute_loss` on a
prepared inputs dict (what its generation step would have produced).
"""

from __future__ import annotations

import pytest
import torch

from miva.rl.policy import LossSettings, PolicyBatch, micro_batch_loss
from tests.rl.conftest import tiny_qwen2, word_tokenizer

trl = pytest.importorskip("trl")

B, P, C = 4, 3, 6
AGG = {"grpo": "seq-mean-token-mean", "dr_grpo": "seq-mean-token-sum-norm", "dapo": "token-mean"}


def _fixed_inputs():
    g = torch.Generator().manual_seed(1)
    completion_mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 5 + [0], [1] * 2 + [0] * 4])
    return {
        "prompt_ids": torch.randint(3, 64, (B, P), generator=g),
        "prompt_mask": torch.ones(B, P, dtype=torch.long),
        "completion_ids": torch.randint(3, 64, (B, C), generator=g),
        "completion_mask": completion_mask,
        "advantages": torch.tensor([1.0, -0.5, 0.3, -0.8]),
        "num_items_in_batch": completion_mask.sum().float(),
    }


def _trl_trainer(model, loss_type, beta, kl_corr, tmp_path):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(
        output_dir=str(tmp_path / "trl"),
        loss_type=loss_type,
        beta=beta,
        use_bias_correction_kl=kl_corr,
        epsilon=0.2,
        epsilon_high=0.28,
        num_generations=4,
        per_device_train_batch_size=4,
        max_completion_length=C,
        report_to=[],
        use_cpu=True,
        model_init_kwargs={"dtype": torch.float32},
        bf16=False,  # compare in float32 (TRL autocasts to bf16 by default)
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=lambda completions, **kw: [0.0] * len(completions),
        args=args,
        train_dataset=Dataset.from_dict({"prompt": ["t3 t4"] * 8}),
        processing_class=word_tokenizer(),
    )
    trainer.current_gradient_accumulation_steps = 1
    return trainer


@pytest.mark.parametrize(
    ("loss_type", "beta", "off_policy", "kl_corr"),
    [
        ("grpo", 0.0, False, False),
        ("grpo", 0.04, True, False),
        ("dr_grpo", 0.0, True, False),
        ("dapo", 0.04, True, False),
        ("dapo", 0.04, True, True),
    ],
)
def test_loss_and_gradients_match_trl(loss_type, beta, off_policy, kl_corr, tmp_path):
    # TRL loads its own copy (and a reference copy when beta > 0) from the folder;
    # it patches the forward of the model it holds, so ours is a separate object.
    folder = tmp_path / "model"
    tiny_qwen2(seed=0).save_pretrained(folder)
    ours = type(tiny_qwen2()).from_pretrained(folder, dtype=torch.float32)
    trainer = _trl_trainer(str(folder), loss_type, beta, kl_corr, tmp_path)
    inputs = _fixed_inputs()
    g = torch.Generator().manual_seed(2)
    # fixed "old" and "reference" log-probs: the current ones plus noise, so ratios clip
    with torch.no_grad():
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
        attn = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
        logits = ours(input_ids=ids, attention_mask=attn).logits[:, :-1]
        cur = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        completion_cur = cur[:, P - 1 :]
    old = completion_cur + 0.3 * torch.randn(B, C, generator=g) if off_policy else None
    ref = completion_cur + 0.2 * torch.randn(B, C, generator=g)
    if old is not None:
        inputs["old_per_token_logps"] = old
    if beta:
        inputs["ref_per_token_logps"] = ref

    trainer.model.train()
    trl_loss = trainer.compute_loss(trainer.model, inputs)
    trl_loss.backward()
    trl_grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters()}

    def aligned(x):  # completion-aligned [B, C] -> target-aligned [B, P + C - 1]
        out = torch.zeros(B, P + C - 1)
        out[:, P - 1 :] = x
        return out

    loss_mask = torch.zeros(B, P + C - 1)
    loss_mask[:, P - 1 :] = inputs["completion_mask"].float()
    batch = PolicyBatch(
        input_ids=ids,
        attention_mask=attn,
        loss_mask=loss_mask,
        advantages=inputs["advantages"],
        old_logp=aligned(old) if old is not None else None,
        ref_logp=aligned(ref) if beta else None,
    )
    settings = LossSettings(
        agg=AGG[loss_type],
        beta=beta,
        kl_ratio_correction=kl_corr,
        max_len=C,
        num_seqs=float(B),
        num_tokens=float(inputs["num_items_in_batch"]),
    )
    ours.train()
    our_loss, metrics = micro_batch_loss(ours, batch, settings)
    our_loss.backward()

    assert our_loss.item() == pytest.approx(trl_loss.item(), rel=1e-5, abs=1e-7)
    if off_policy:
        assert metrics["clip_frac"] > 0  # the noisy old log-probs do clip some tokens
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, trl_grads[name], rtol=1e-4, atol=1e-6, msg=name)
