"""The GPU check's parts that run here: its CPU smoke mode end to end (the tiny model through
the same trainer, DeepSpeed ZeRO-2, multi-turn zoom rollouts), its FLOP count of a real
Qwen2.5-VL model, and the wheel folder's size limit and pins. The GPU run itself needs a
GPU (`make gpu-check`)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import gpu_check  # noqa: E402
import gpu_wheels  # noqa: E402


def test_smoke_mode_runs_the_check_on_cpu(tmp_path):
    out = tmp_path / "check.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "gpu_check.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    r = json.loads(out.read_text())
    assert r["smoke"] and r["engine"].startswith("deepspeed ZeRO-2")
    assert len(r["steps"]) == 1 and r["steps"][0]["step"] == 2  # step 1 is the warm-up
    step = r["steps"][0]
    assert step["trajectories"] == 4 and step["sampled_tokens"] > 0
    for key in ("step_time_s", "rollout_time_s", "update_time_s", "rollout_tokens_per_s"):
        assert r[key] > 0, key
    assert r["update_tflops"] > 0 and r["mfu_vs_measured_matmul"] > 0
    assert r["spec_peak_tflops"] is None and math.isnan(r["mfu"])  # a CPU has no data sheet
    assert "| MFU of the update" in done.stdout and "| step time (s)" in done.stdout


def test_flop_count_reads_the_towers_of_a_qwen25_vl_model():
    from miva.agent.model import load_model

    model, _ = load_model("tiny-random")
    text, vision, vocab = gpu_check.towers(model)
    cfg = model.config
    assert text.layers == cfg.text_config.num_hidden_layers and text.width == 256
    lm = model.model.language_model
    assert text.matmul_params == sum(p.numel() for p in lm.layers.parameters())
    assert vocab == cfg.text_config.vocab_size
    assert vision.layers == cfg.vision_config.depth and vision.width == 64
    blocks = sum(p.numel() for p in model.model.visual.blocks.parameters())
    assert blocks < vision.matmul_params < sum(p.numel() for p in model.model.visual.parameters())


def test_wheel_folder_over_the_limit_fails_naming_the_largest(tmp_path):
    (tmp_path / "a-1-py3-none-any.whl").write_bytes(b"x" * 3000)
    (tmp_path / "b-1-py3-none-any.whl").write_bytes(b"x" * 1000)
    assert gpu_wheels.check_size(tmp_path, limit=4000) == 4000
    with pytest.raises(SystemExit, match=r"a-1-py3-none-any\.whl"):
        gpu_wheels.check_size(tmp_path, limit=3999)


def test_every_wheel_the_gpu_machine_needs_has_a_pin():
    pins = gpu_wheels.pins()
    for name in (*gpu_wheels.PURE, *gpu_wheels.BINARY, *gpu_wheels.BUILT):
        assert gpu_wheels.requirement(name, pins).startswith(name + "==")
    assert gpu_wheels.LIMIT_BYTES == 64 * 2**20
