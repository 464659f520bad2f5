"""The quiet console of a local run: one line as each task starts and one as it ends (time
and key figure); everything kfp.local prints goes to files instead.

kfp.local prints, for each task, `Executing task 'NAME'`, the task's own output (the
executor JSON, progress bars, logs), then `Task 'NAME' finished with status ...`. `RunLog`
is the text stream that output is redirected to: it writes it all to `executor.log`, each
task's part to `<task>.log`, and echoes the start and end of every task. A successful
stage prints its key figure after `artifacts.STAGE_LINE`; that becomes the end line's text.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from miva.pipeline.artifacts import STAGE_LINE

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_START = re.compile(r"Executing task '([^']+)'")
_END = re.compile(r"Task '([^']+)' finished with status (\w+)")


class RunLog(io.TextIOBase):
    def __init__(self, folder: str | Path, echo: Callable[[str], None]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.echo = echo
        self.all = (self.folder / "executor.log").open("a", encoding="utf-8")
        self.task: str | None = None
        self.task_file: io.TextIOBase | None = None
        self.started = 0.0
        self.figure = ""
        self.finished: list[tuple[str, str, float]] = []  # (task, status, seconds)
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self._line(_ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        if self.all.closed:
            return
        self.all.flush()
        if self.task_file is not None:
            self.task_file.flush()

    def close(self) -> None:
        if self._partial:
            self._line(_ANSI.sub("", self._partial))
            self._partial = ""
        if self.task_file is not None:
            self.task_file.close()
        self.all.close()
        super().close()

    def _line(self, line: str) -> None:
        if self.all.closed:  # a logger that kept this stream after the run: nowhere to go
            return
        self.all.write(line + "\n")
        start = _START.search(line)
        if start:
            self._begin(start.group(1))
        if self.task_file is not None:
            self.task_file.write(line + "\n")
        marker = line.find(STAGE_LINE)
        if marker >= 0 and self.task is not None:
            self.figure = line[marker + len(STAGE_LINE) :].strip()
        end = _END.search(line)
        if end and end.group(1) == self.task:
            self._end(end.group(2))

    def _begin(self, task: str) -> None:
        if self.task_file is not None:
            self.task_file.close()
        self.task, self.figure, self.started = task, "", time.monotonic()
        self.task_file = (self.folder / f"{task}.log").open("a", encoding="utf-8")
        self.echo(f"  {task:<12} started  {datetime.now():%H:%M:%S}")

    def _end(self, status: str) -> None:
        seconds = time.monotonic() - self.started
        assert self.task is not None
        self.finished.append((self.task, status, seconds))
        ok = status == "SUCCESS"
        text = self.figure if ok else f"FAILED, see {self.folder / (self.task + '.log')}"
        self.echo(f"  {self.task:<12} {'done' if ok else 'failed':<8} {seconds:6.1f} s  {text}")
        self.task = None
