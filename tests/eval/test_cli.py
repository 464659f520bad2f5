"""`miva bench list` and `miva evaluate` argument and folder errors (no model needed)."""

from miva.cli import main


def test_bench_list_names_every_adapter_and_its_files(capsys):
    assert main(["bench", "list"]) == 0
    out = capsys.readouterr().out
    for name in (
        "mig-bench",
        "mc-bench",
        "blink",
        "mmiu",
        "muirbench",
        "mat-search",
        "mat-coding",
        "hr-bench",
        "vstar",
    ):
        assert f"{name}: " in out
    assert "MIG_data.json" in out and "tools: search" in out


def test_eval_on_a_folder_in_the_wrong_layout_is_one_clear_error(tmp_path, capsys):
    code = main(
        [
            "evaluate",
            "--bench",
            "mig-bench",
            "--path",
            str(tmp_path),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "MIG_data.json: missing" in err and "Traceback" not in err


def test_eval_needs_something_to_evaluate(tmp_path, capsys):
    assert main(["evaluate", "--path", str(tmp_path)]) == 2
    assert "--path needs --bench" in capsys.readouterr().err


def test_the_old_command_name_still_works_and_names_the_new_one(tmp_path, capsys):
    assert main(["eval", "--path", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "`miva eval` is deprecated; use `miva evaluate`" in err
    assert "--path needs --bench" in err
