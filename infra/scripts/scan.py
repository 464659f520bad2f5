"""Run checkov on every scan target and fail on any finding the skip list does not accept.

Usage:
  scan.py --skips infra/checkov-skips.yaml \
      --terraform dev=infra/terraform:envs/dev.tfvars --terraform prod=... \
      --kubernetes dev=rendered/dev.yaml --kubernetes prod=...

A target is named `<framework>/<environment>`: `terraform/dev` is the Terraform root
planned with envs/dev.tfvars, `kubernetes/prod` the rendered prod overlay. Each target is
scanned by its own checkov run, so graph checks (e.g. "every pod has a NetworkPolicy")
never see objects of another environment.

The skip list (YAML) is a list of entries:

  - check: CKV_AWS_157                         # the checkov id
    resource: module.mlflow_db.aws_db_instance.this   # checkov's resource id; `*` globs
    environments: [terraform/dev]              # targets it applies to; `*` globs
    reason: one line: why this finding is accepted there

A finding passes when an entry matches its check, resource and target. The scan fails
when a finding matches no entry, when an entry matches nothing (a stale skip hides the
next real finding), or when checkov cannot parse a file.

Runs with the Python of the scanner venv (checkov and PyYAML importable). No network:
checkov's platform download and update check are switched off.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

FRAMEWORKS = ("terraform", "kubernetes")
OFFLINE_ENV = {"BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"}


class ScanError(RuntimeError):
    """A malformed skip list or target; the message names it."""


@dataclass(frozen=True)
class Skip:
    check: str
    resource: str
    environments: tuple[str, ...]
    reason: str
    line: int

    def covers(self, target: str) -> bool:
        return any(glob_match(pattern, target) for pattern in self.environments)

    def matches(self, target: str, finding: Finding) -> bool:
        return (
            self.check == finding.check
            and glob_match(self.resource, finding.resource)
            and self.covers(target)
        )


@dataclass(frozen=True)
class Finding:
    check: str
    name: str
    resource: str
    file: str
    lines: tuple[int, int]


@dataclass
class TargetResult:
    target: str
    passed: int = 0
    failed: list[Finding] = field(default_factory=list)
    parsing_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def glob_match(pattern: str, value: str) -> bool:
    """`*` matches any run of characters; everything else is literal (ids contain [])."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, value) is not None


def load_skips(path: Path) -> list[Skip]:
    """The skip list; every entry needs a check, a resource, environments and a reason."""
    text = path.read_text()
    entries = yaml.compose(text)
    data = yaml.safe_load(text) or []
    if not isinstance(data, list):
        raise ScanError(f"{path}: expected a list of skip entries")
    skips = []
    for index, entry in enumerate(data):
        line = entries.value[index].start_mark.line + 1
        where = f"{path}:{line}"
        if not isinstance(entry, dict):
            raise ScanError(f"{where}: a skip entry is a mapping")
        missing = [k for k in ("check", "resource", "environments", "reason") if not entry.get(k)]
        if missing:
            raise ScanError(f"{where}: skip entry lacks {', '.join(missing)}")
        unknown = sorted(set(entry) - {"check", "resource", "environments", "reason"})
        if unknown:
            raise ScanError(f"{where}: unknown key(s) {', '.join(unknown)}")
        environments = entry["environments"]
        if isinstance(environments, str) or not all(isinstance(e, str) for e in environments):
            raise ScanError(f"{where}: environments is a list of target names")
        for env in environments:
            if env.split("/", 1)[0] not in FRAMEWORKS and env != "*":
                raise ScanError(f"{where}: environment {env!r} is not <framework>/<env>")
        reason = str(entry["reason"]).strip()
        if "\n" in reason:
            raise ScanError(f"{where}: the reason is one line")
        skips.append(
            Skip(
                check=str(entry["check"]),
                resource=str(entry["resource"]),
                environments=tuple(environments),
                reason=reason,
                line=line,
            )
        )
    return skips


def checkov_command(framework: str, spec: str) -> list[str]:
    """The checkov invocation for one target spec (`DIR:VARFILE` or `FILE`)."""
    base = [
        sys.executable,
        "-m",
        "checkov.main",
        "--framework",
        framework,
        "--output",
        "json",
        "--skip-download",
        "--compact",
    ]
    if framework == "terraform":
        directory, _, var_file = spec.partition(":")
        command = [*base, "--directory", directory]
        if var_file:
            command += ["--var-file", str(Path(directory) / var_file)]
        return command
    return [*base, "--file", spec]


def parse_report(target: str, raw: str) -> TargetResult:
    """Counts and failed checks from checkov's JSON (one framework: an object)."""
    try:
        report = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ScanError(f"{target}: checkov did not print JSON ({exc}): {raw[:300]}") from None
    if isinstance(report, list):  # several frameworks ran; we ask for one
        report = next((r for r in report if r.get("results")), report[0])
    result = TargetResult(target)
    summary = report.get("summary", report)
    result.passed = int(summary.get("passed", 0))
    failed = (report.get("results") or {}).get("failed_checks", [])
    for item in failed:
        result.failed.append(
            Finding(
                check=item["check_id"],
                name=item.get("check_name", ""),
                resource=item["resource"],
                file=item.get("repo_file_path") or item.get("file_path", ""),
                lines=tuple(item.get("file_line_range") or (0, 0)),
            )
        )
    errors = (report.get("results") or {}).get("parsing_errors", [])
    result.parsing_errors = [str(e) for e in errors]
    if int(summary.get("parsing_errors", 0)) and not errors:
        result.parsing_errors = [f"{summary['parsing_errors']} file(s) failed to parse"]
    return result


def run_target(framework: str, name: str, spec: str) -> TargetResult:
    target = f"{framework}/{name}"
    command = checkov_command(framework, spec)
    start = time.monotonic()
    proc = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **OFFLINE_ENV}, check=False
    )
    # checkov exits 1 when a check fails; anything else (or no output) is a crash.
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise ScanError(
            f"{target}: checkov exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"
        )
    result = parse_report(target, proc.stdout)
    result.seconds = time.monotonic() - start
    return result


def judge(results: list[TargetResult], skips: list[Skip]) -> tuple[list[str], dict[Skip, int], int]:
    """(problems, uses of each skip, accepted findings)."""
    problems: list[str] = []
    used = {skip: 0 for skip in skips}
    accepted = 0
    for result in results:
        for error in result.parsing_errors:
            problems.append(f"{result.target}: checkov could not parse {error}")
        for finding in result.failed:
            match = next((s for s in skips if s.matches(result.target, finding)), None)
            if match is None:
                problems.append(
                    f"{result.target}: {finding.check} {finding.resource} "
                    f"({finding.file}:{finding.lines[0]}) {finding.name}"
                )
            else:
                used[match] += 1
                accepted += 1
    return problems, used, accepted


def stale(skips: list[Skip], used: dict[Skip, int], scanned: list[str]) -> list[str]:
    """Entries that accepted nothing in any target they cover that was scanned."""
    out = []
    for skip in skips:
        covered = [t for t in scanned if skip.covers(t)]
        if not covered:
            out.append(f"line {skip.line}: {skip.check} covers no scanned target")
        elif used[skip] == 0:
            out.append(
                f"line {skip.line}: {skip.check} {skip.resource} matched no finding in "
                f"{', '.join(covered)}: the finding is fixed, delete the entry"
            )
    return out


def parse_targets(values: list[str], framework: str) -> list[tuple[str, str, str]]:
    targets = []
    for value in values:
        name, sep, spec = value.partition("=")
        if not sep or not name or not spec:
            raise ScanError(f"--{framework} expects NAME=SPEC, got {value!r}")
        targets.append((framework, name, spec))
    return targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skips", type=Path, required=True)
    parser.add_argument("--terraform", action="append", default=[], metavar="ENV=DIR:VARFILE")
    parser.add_argument("--kubernetes", action="append", default=[], metavar="ENV=FILE")
    args = parser.parse_args(argv)
    try:
        skips = load_skips(args.skips)
        targets = parse_targets(args.terraform, "terraform") + parse_targets(
            args.kubernetes, "kubernetes"
        )
        if not targets:
            raise ScanError("no targets: give --terraform and/or --kubernetes")
        results = [run_target(*t) for t in targets]
    except ScanError as exc:
        print(f"scan: {exc}", file=sys.stderr)
        return 2

    problems, used, accepted = judge(results, skips)
    stale_skips = stale(skips, used, [r.target for r in results])
    print(f"{'target':<26} {'passed':>6} {'failed':>6} {'accepted':>8} {'seconds':>7}")
    for r in results:
        ok = sum(1 for f in r.failed if any(s.matches(r.target, f) for s in skips))
        print(f"{r.target:<26} {r.passed:>6} {len(r.failed):>6} {ok:>8} {r.seconds:>7.1f}")
    total_passed = sum(r.passed for r in results)
    total_failed = sum(len(r.failed) for r in results)
    print(
        f"checkov: {total_passed} passed, {total_failed} failed, {accepted} of them accepted "
        f"by {sum(1 for s in skips if used[s])} skip entries ({args.skips})"
    )
    for problem in problems:
        print(f"  FINDING {problem}")
    for entry in stale_skips:
        print(f"  STALE SKIP {args.skips}:{entry}")
    if problems:
        print(
            f"Fix each finding, or accept it with a justified entry in {args.skips} "
            "(check, resource, environments, one-line reason)."
        )
    return 1 if problems or stale_skips else 0


if __name__ == "__main__":
    sys.exit(main())
