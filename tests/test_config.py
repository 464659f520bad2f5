import pytest

from miva.cli import main
from miva.config import load_config, parse_override
from miva.errors import ConfigError


def test_default_preset_loads_and_overrides_apply():
    cfg = load_config("tiny-cpu", ["train.lr=1e-5", "data.tasks=[counting, grounding]"])
    assert cfg.train.lr == 1e-5
    assert cfg.data.tasks == ["counting", "grounding"]


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
        ("train.group_size=3", "micro_batch_size"),
        ("data.tasks=[juggling]", "juggling"),
        ("train.nonexistent=1", "train.nonexistent"),
        ("train.eps_high=0.1", "eps_high"),
    ],
)
def test_bad_overrides_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config("tiny-cpu", [override])


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ConfigError, match="tiny-cpu"):
        load_config("no-such-preset")


def test_cli_reports_config_errors_without_traceback(capsys):
    assert main(["config", "--set", "train.group_size=3"]) == 2
    err = capsys.readouterr().err
    assert "micro_batch_size" in err and "Traceback" not in err


def test_errors_are_one_line_naming_the_key_and_where_the_value_came_from(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config("tiny-cpu", ["agent.python.cpu_seconds=-1"])
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("invalid config: agent.python.cpu_seconds = -1 (from --set ")
    # a cross-field rule names the override that broke it
    with pytest.raises(ConfigError, match=r"\(from --set train.group_size=3\)"):
        load_config("tiny-cpu", ["train.group_size=3"])
    preset = tmp_path / "mine.yaml"
    preset.write_text("seed: 1\ndata:\n  n: -5\n  bogus: 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(preset)
    msg = str(err.value)
    assert "\n" not in msg
    assert f"data.n = -5 (from {preset}:3)" in msg and f"data.bogus = 1 (from {preset}:4)" in msg


def test_invalid_yaml_is_one_line_with_its_position(tmp_path):
    preset = tmp_path / "broken.yaml"
    preset.write_text("data:\n  n: [1\nseed: 1\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: invalid YAML: line 3, column 5: ") as err:
        load_config(preset)
    assert "\n" not in str(err.value)
