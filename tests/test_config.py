import pytest

from miva.cli import main
from miva.config import load_config, parse_override
from miva.errors import ConfigError


def test_default_preset_loads_and_overrides_apply():
    cfg = load_config("tiny-cpu", ["grpo.lr=1e-5", "synthesize.tasks=[counting, grounding]"])
    assert cfg.grpo.lr == 1e-5
    assert cfg.synthesize.tasks == ["counting", "grounding"]


@pytest.mark.parametrize("preset", ["tiny-cpu", "qwen2.5-vl-3b-gpu", "qwen2.5-vl-7b-gpu"])
def test_every_preset_validates(preset):
    assert load_config(preset).run_name


def test_digest_changes_with_config():
    assert load_config().digest() == load_config().digest()
    assert load_config().digest() != load_config(overrides=["seed=1"]).digest()


def test_parse_override_reads_yaml_values():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("x=[1, 2]") == (["x"], [1, 2])
    with pytest.raises(ConfigError):
        parse_override("novalue")


@pytest.mark.parametrize(
    "override, key",
    [
        ("grpo.group_size=3", "micro_batch_size"),
        ("synthesize.tasks=[juggling]", "juggling"),
        ("grpo.nonexistent=1", "grpo.nonexistent"),
        ("grpo.eps_high=0.1", "eps_high"),
    ],
)
def test_bad_overrides_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config("tiny-cpu", [override])


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ConfigError, match="tiny-cpu"):
        load_config("no-such-preset")


def test_cli_reports_config_errors_without_traceback(capsys):
    assert main(["config", "--set", "grpo.group_size=3"]) == 2
    err = capsys.readouterr().err
    assert "micro_batch_size" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- documentation


def test_every_setting_and_section_is_described():
    from miva.config import sections

    missing = [
        f.key for s in sections() for f in s.fields if len(f.description.split()) < 4
    ]  # a few words at least: what it does
    assert missing == [], "settings without a description (Field(description=...))"
    assert [s.key for s in sections() if not s.description] == [], "sections without a docstring"


def test_config_show_prints_every_key_with_value_and_description(capsys):
    from miva.config import sections

    assert main(["config", "show", "--set", "grpo.lr=0.5"]) == 0
    out = capsys.readouterr().out
    assert "grpo.lr = 0.5  # Peak AdamW learning rate" in out
    for section in sections():
        for f in section.fields:
            assert f"\n{f.key} = " in out, f.key


def test_type_names_read_like_python():
    from miva.config import sections

    docs = {f.key: f for s in sections() for f in s.fields}
    assert docs["synthesize.detail"].type == '"fine" | "coarse"'
    assert docs["evaluate.max_items"].type == "int | None"
    assert docs["reward.weights"].type == "dict[str, float]"
    assert docs["grpo.status_policy"].default["malformed"] == "penalize"


# ----------------------------------------------------------------------------- renamed keys


def test_renamed_keys_still_load_and_warn_with_the_new_key(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("data:\n  n: 12\ntrain:\n  lr: 0.001\n  engine: torch\nagent:\n  engine: hf\n")
    with pytest.warns(FutureWarning) as caught:
        cfg = load_config(old, ["eval.max_items=3"])
    messages = " ".join(str(w.message) for w in caught)
    for old_key, new_key in [
        ("data.n", "synthesize.n"),
        ("train.lr", "grpo.lr"),
        ("train.engine", "grpo.training_backend"),
        ("agent.engine", "agent.rollout_engine"),
        ("eval.max_items", "evaluate.max_items"),
    ]:
        assert f"{old_key}" in messages and f"use {new_key}" in messages, old_key
    assert (cfg.synthesize.n, cfg.grpo.lr, cfg.evaluate.max_items) == (12, 0.001, 3)


def test_an_override_with_the_old_key_beats_the_preset():
    with pytest.warns(FutureWarning, match="use grpo.steps"):
        cfg = load_config("tiny-cpu", ["train.steps=3"])
    assert cfg.grpo.steps == 3


def test_old_and_new_spelling_together_is_an_error(tmp_path):
    both = tmp_path / "both.yaml"
    both.write_text("train:\n  lr: 0.1\ngrpo:\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match="both train.lr .deprecated. and grpo.lr"):
        load_config(both)


def test_deprecated_python_names_still_read_the_new_sections():
    cfg = load_config()
    with pytest.deprecated_call():
        assert cfg.train is cfg.grpo
    with pytest.deprecated_call():
        assert cfg.agent.engine == cfg.agent.rollout_engine


# ----------------------------------------------------------------------------- one way to set


def test_cross_field_checks_run_on_a_section_built_alone():
    from miva.config import CHECKS, EvaluateConfig, GRPOConfig

    assert set(CHECKS) >= {GRPOConfig, EvaluateConfig}
    with pytest.raises(ValueError, match="micro_batch_size"):
        GRPOConfig(prompts_per_step=3, group_size=3, micro_batch_size=2)
    with pytest.raises(ValueError, match="evaluate.greedy = false"):
        EvaluateConfig(pass_k=4)


def test_command_flags_are_shorthands_that_write_config_keys():
    from miva.cli import build_parser

    args = build_parser().parse_args(
        ["grpo", "--steps", "3", "--resume", "--no-tracking", "--set", "grpo.lr=0.1"]
    )
    assert sorted(args.overrides) == [
        "grpo.lr=0.1",
        "grpo.resume=true",
        "grpo.steps=3",
        "registry.track_runs=false",
    ]
    args = build_parser().parse_args(["evaluate", "--pass-k", "4", "--splits", "test, val"])
    assert args.overrides == [
        "evaluate.pass_k=4",
        "evaluate.greedy=false",
        'evaluate.splits=["test", "val"]',
    ]
    cfg = load_config("tiny-cpu", args.overrides)
    assert (cfg.evaluate.pass_k, cfg.evaluate.greedy, cfg.evaluate.splits) == (
        4,
        False,
        ["test", "val"],
    )


def test_errors_are_one_line_naming_the_key_and_where_the_value_came_from(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config("tiny-cpu", ["agent.python.cpu_seconds=-1"])
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("invalid config: agent.python.cpu_seconds = -1 (from --set ")
    # a cross-field rule names the override that broke it
    with pytest.raises(ConfigError, match=r"\(from --set grpo.group_size=3\)"):
        load_config("tiny-cpu", ["grpo.group_size=3"])
    preset = tmp_path / "mine.yaml"
    preset.write_text("seed: 1\nsynthesize:\n  n: -5\n  bogus: 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(preset)
    msg = str(err.value)
    assert "\n" not in msg
    assert f"synthesize.n = -5 (from {preset}:3)" in msg
    assert f"synthesize.bogus = 1 (from {preset}:4)" in msg


def test_errors_under_a_renamed_key_name_the_new_key_and_the_old_line(tmp_path):
    preset = tmp_path / "old.yaml"
    preset.write_text("seed: 1\ndata:\n  n: -5\n")
    with pytest.warns(FutureWarning), pytest.raises(ConfigError) as err:
        load_config(preset)
    assert f"synthesize.n = -5 (from {preset}:3)" in str(err.value)
    with pytest.warns(FutureWarning), pytest.raises(ConfigError) as err:
        load_config("tiny-cpu", ["train.group_size=3"])
    assert "(from --set train.group_size=3)" in str(err.value)


def test_invalid_yaml_is_one_line_with_its_position(tmp_path):
    preset = tmp_path / "broken.yaml"
    preset.write_text("data:\n  n: [1\nseed: 1\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: invalid YAML: line 3, column 5: ") as err:
        load_config(preset)
    assert "\n" not in str(err.value)


def test_the_python_tool_section_was_agent_sandbox(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("agent:\n  sandbox:\n    memory_mb: 512\n")
    with pytest.warns(FutureWarning, match=r"use agent\.python\."):
        cfg = load_config(old, ["agent.sandbox.wall_seconds=3"])
    assert (cfg.agent.python.memory_mb, cfg.agent.python.wall_seconds) == (512, 3.0)


def test_section_rules_of_the_sandbox_and_the_judge_are_in_checks():
    from miva.config import CHECKS, PythonToolConfig, RewardConfig

    assert set(CHECKS) >= {PythonToolConfig, RewardConfig}
    with pytest.raises(ValueError, match="agent.python.service_url is not set"):
        PythonToolConfig(backend="service")
    with pytest.raises(ValueError, match="lacks the placeholder"):
        RewardConfig(weights={"judge": 1.0}, judge={"prompt": "no slots"})
    assert RewardConfig(judge={"prompt": "no slots"}).judge.prompt == "no slots"  # judge off


def test_rollout_correction_reads_a_bare_off_and_resolves_per_rollout_engine():
    cfg = load_config("tiny-cpu", ["grpo.rollout_correction.mode=off"])
    assert cfg.grpo.rollout_correction.mode == "off"
    auto = load_config().grpo.rollout_correction
    assert (auto.resolved("hf"), auto.resolved("vllm")) == ("off", "token-tis")
