"""The quiet console of a local run: kfp.local's lines go to files, one line per task
start and end reaches the console."""

from __future__ import annotations

from miva.pipeline.artifacts import STAGE_LINE
from miva.pipeline.runlog import RunLog

# What kfp.local prints for one task (colours included), as logging and print write it.
TASK = (
    "12:00:00.001 - INFO - Executing task \x1b[96m'synthesize'\x1b[0m\n"
    "12:00:00.002 - INFO - Streamed logs:\n\n"
    '    {"executor_input": {"inputs": {}}}\n'
    "    synth: 100%|##########| 40/40\n"
    f"    {STAGE_LINE}40 samples (test 4, train 32, val 4), digest abc\n"
    "12:00:03.000 - INFO - Task \x1b[96m'synthesize'\x1b[0m finished with status "
    "\x1b[92mSUCCESS\x1b[0m\n"
    "12:00:03.001 - INFO - Task 'synthesize' outputs:\n    dataset: Dataset( name='dataset')\n"
)


def test_task_output_goes_to_files_and_the_console_gets_two_lines(tmp_path):
    shown: list[str] = []
    log = RunLog(tmp_path / "logs", shown.append)
    for piece in (TASK[:50], TASK[50:]):  # written in pieces, as a stream is
        log.write(piece)
    log.write("12:00:04 - INFO - Executing task 'validate'\n    Traceback: boom\n")
    log.write("12:00:05 - INFO - Task 'validate' finished with status FAILURE\n")
    log.close()

    assert len(shown) == 4
    assert shown[0].split() == ["synthesize", "started", shown[0].split()[-1]]
    assert shown[1].split()[:2] == ["synthesize", "done"]
    assert shown[1].endswith("s  40 samples (test 4, train 32, val 4), digest abc")
    assert shown[3].split()[:2] == ["validate", "failed"]
    assert str(tmp_path / "logs" / "validate.log") in shown[3]
    everything = (tmp_path / "logs" / "executor.log").read_text()
    assert '"executor_input"' in everything and "\x1b[" not in everything
    synth = (tmp_path / "logs" / "synthesize.log").read_text()
    assert "synth: 100%" in synth and "outputs:" in synth and "boom" not in synth
    assert "Traceback: boom" in (tmp_path / "logs" / "validate.log").read_text()
    assert [(task, status) for task, status, _ in log.finished] == [
        ("synthesize", "SUCCESS"),
        ("validate", "FAILURE"),
    ]


def test_writes_after_close_are_dropped(tmp_path):
    log = RunLog(tmp_path / "logs", print)
    log.close()
    assert log.write("a logger that kept the stream\n") == len("a logger that kept the stream\n")
