"""Benchmarks whose published prompt lists the options: the agent's prompt must not list
them a second time (`meta["options_in_question"]` -> `format.user_prompt`)."""

from miva.agent.format import user_prompt
from miva.data.schema import Sample
from tests.eval.native import png

# A published prompt whose option list the letter heuristic cannot see ("1)" not "A.").
QUESTION = "Which image is brighter? Options: 1) the first 2) the second\nAnswer with A or B."


def test_options_listed_by_the_benchmark_are_not_appended_again():
    prompt = user_prompt(QUESTION, 2, ["the first", "the second"], options_in_question=True).text
    assert prompt.endswith(QUESTION)
    assert "A. the first" not in prompt


def test_options_are_appended_when_the_question_does_not_list_them():
    prompt = user_prompt(QUESTION, 2, ["the first", "the second"]).text
    assert prompt.endswith("A. the first\nB. the second")


def test_blink_samples_carry_the_flag(tmp_path):
    """BLINK ships its prompt with the options: converted samples say so."""
    from miva.data.benchmarks import load_benchmark
    from tests.eval.native import write_parquet
    from tests.eval.test_choice_benchmarks import BLINK_SCHEMA, _blink_row

    write_parquet(
        tmp_path / "Counting" / "val-00000-of-00001.parquet",
        [_blink_row("c1", "Counting", [png()], "(A)")],
        BLINK_SCHEMA,
    )
    _bench, converted = load_benchmark("blink", tmp_path)
    assert converted.samples
    assert all(s.meta.get("options_in_question") is True for s in converted.samples)


def test_rollout_prompt_honours_the_flag():
    from miva.agent.engines.scripted import ScriptedEngine
    from miva.agent.model import load_processor
    from miva.agent.rollout import Agent
    from miva.config import load_config

    cfg = load_config("tiny-cpu")
    processor = load_processor("tiny-random")
    sample = Sample(
        task="choice",
        images=[png(), png(color="blue")],
        question=QUESTION,
        answer_type="choice",
        answer="A",
        choices=["the first", "the second"],
        meta={"options_in_question": True},
    )
    engine = ScriptedEngine(processor, lambda key, turn: "<answer>A</answer>")
    (traj,) = Agent(processor, cfg.agent, {}, engine).rollout([sample])
    user = next(t.text for t in traj.turns if t.role == "user")
    assert "A. the first" not in user
