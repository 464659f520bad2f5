"""The checkov wrapper: which findings the skip list accepts, and which entries are stale.

checkov itself runs in `make infra-validate` (its own venv); these tests feed the wrapper
checkov's JSON report format and check the decisions it makes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def report(passed, failed):
    """A checkov JSON report (one framework) with the given failed checks."""
    return json.dumps(
        {
            "check_type": "terraform",
            "results": {
                "passed_checks": [],
                "failed_checks": [
                    {
                        "check_id": check,
                        "check_name": "a check",
                        "resource": resource,
                        "file_path": "/modules/x/main.tf",
                        "file_line_range": [3, 9],
                    }
                    for check, resource in failed
                ],
                "parsing_errors": [],
            },
            "summary": {"passed": passed, "failed": len(failed), "parsing_errors": 0},
        }
    )


def skip_file(tmp_path, text):
    path = tmp_path / "skips.yaml"
    path.write_text(text)
    return path


SKIPS = """\
- check: CKV_AWS_157
  resource: module.mlflow_db.aws_db_instance.this
  environments: [terraform/dev]
  reason: dev database is disposable
- check: CKV_AWS_51
  resource: module.ecr.aws_ecr_repository.this[*]
  environments: [terraform/dev]
  reason: dev rebuilds tags
"""


def test_report_is_parsed(scan):
    result = scan.parse_report("terraform/dev", report(7, [("CKV_AWS_1", "aws_s3_bucket.b")]))
    assert result.passed == 7
    assert [(f.check, f.resource, f.lines) for f in result.failed] == [
        ("CKV_AWS_1", "aws_s3_bucket.b", (3, 9))
    ]


def test_skip_accepts_only_its_check_resource_and_environment(scan, tmp_path):
    skips = scan.load_skips(skip_file(tmp_path, SKIPS))
    dev = scan.parse_report(
        "terraform/dev",
        report(
            1,
            [
                ("CKV_AWS_157", "module.mlflow_db.aws_db_instance.this"),
                ("CKV_AWS_51", 'module.ecr.aws_ecr_repository.this["miva-base"]'),
                ("CKV_AWS_51", "module.other.aws_ecr_repository.this"),  # other resource
            ],
        ),
    )
    prod = scan.parse_report(
        "terraform/prod", report(1, [("CKV_AWS_157", "module.mlflow_db.aws_db_instance.this")])
    )
    problems, used, accepted = scan.judge([dev, prod], skips)
    assert accepted == 2
    assert len(problems) == 2
    assert any("terraform/dev: CKV_AWS_51 module.other" in p for p in problems)
    assert any("terraform/prod: CKV_AWS_157" in p for p in problems)  # dev-only skip
    assert scan.stale(skips, used, ["terraform/dev", "terraform/prod"]) == []


def test_an_entry_that_matches_nothing_is_stale(scan, tmp_path):
    skips = scan.load_skips(skip_file(tmp_path, SKIPS))
    clean = scan.parse_report("terraform/dev", report(5, []))
    problems, used, _ = scan.judge([clean], skips)
    assert problems == []
    stale = scan.stale(skips, used, ["terraform/dev"])
    assert len(stale) == 2 and all("delete the entry" in s for s in stale)
    assert stale[0].startswith("line 1:") and stale[1].startswith("line 5:")


def test_entry_for_an_environment_never_scanned_is_reported(scan, tmp_path):
    skips = scan.load_skips(skip_file(tmp_path, SKIPS))
    _, used, _ = scan.judge([], skips)
    assert all("covers no scanned target" in s for s in scan.stale(skips, used, ["kubernetes/dev"]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- check: CKV_1\n  resource: r\n  environments: [terraform/dev]\n", "lacks reason"),
        (
            "- check: CKV_1\n  resource: r\n  environments: terraform/dev\n  reason: x\n",
            "list of target names",
        ),
        (
            "- check: CKV_1\n  resource: r\n  environments: [dev]\n  reason: x\n",
            "<framework>/<env>",
        ),
        (
            "- check: CKV_1\n  resource: r\n  environments: ['*']\n  reason: x\n  owner: me\n",
            "unknown key",
        ),
        ("check: CKV_1\n", "a list of skip entries"),
    ],
)
def test_malformed_entries_are_rejected_with_their_line(scan, tmp_path, text, message):
    with pytest.raises(scan.ScanError, match=message):
        scan.load_skips(skip_file(tmp_path, text))


def test_glob_matches_whole_ids_with_literal_brackets(scan):
    assert scan.glob_match("module.ecr.this[*]", 'module.ecr.this["miva-gpu"]')
    assert scan.glob_match("*aws_cloudwatch_log_group*", 'module.x.aws_cloudwatch_log_group.y["a"]')
    assert not scan.glob_match("module.ecr.this", "module.ecr.this2")
    assert not scan.glob_match("kubernetes/dev", "kubernetes/dev-2")


def test_committed_skip_list_is_well_formed(scan):
    skips = scan.load_skips(REPO / "infra" / "checkov-skips.yaml")
    assert skips, "the skip list is empty"
    for skip in skips:
        assert len(skip.reason) >= 20, f"line {skip.line}: give a reason a reviewer can check"


def test_terraform_command_scans_one_environment(scan):
    command = scan.checkov_command("terraform", "/w/tf:envs/dev.tfvars")
    assert command[command.index("--directory") + 1] == "/w/tf"
    assert command[command.index("--var-file") + 1] == "/w/tf/envs/dev.tfvars"
    assert "--skip-download" in command
